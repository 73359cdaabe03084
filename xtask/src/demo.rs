//! `cargo xtask demo`: the README's first command. Sets the machine up, builds the test images
//! and the agent, imports the busybox image into the agent's default store, and runs
//! `examples/demo-pod.yaml` in the foreground, printing its containers' output. Needs root.

use anyhow::{bail, Result};

use crate::{setup, util};

pub fn run() -> Result<()> {
    if !util::is_root() {
        bail!("cargo xtask demo must run as root: containers need namespaces and cgroups");
    }
    let images_dir = setup::prepare_release(&["-p", "bosun-agent"])?;
    let root = util::workspace_root();
    let agent = root.join("target/release/bosun-agent");
    let agent = agent.to_string_lossy();
    util::run(&mut util::cmd(
        &agent,
        [
            "image",
            "import",
            &images_dir.join("busybox").to_string_lossy(),
        ],
    ))?;
    let pod = root.join("examples/demo-pod.yaml");
    println!(
        "\n==> running {} with bosun-agent (no containerd, no shim)\n",
        pod.display()
    );
    util::run(
        util::cmd(
            &agent,
            [
                "--log-level",
                "warn",
                "--network",
                "none",
                "run",
                &pod.to_string_lossy(),
            ],
        )
        .current_dir(&root),
    )?;
    println!(
        "\nNext: `{agent} --manifests DIR` runs a directory of Pod manifests as a node daemon;"
    );
    println!("      `{agent} ps` lists its pods, `{agent} logs POD -c CONTAINER` shows logs;");
    println!("      `cargo xtask bench pods` compares container start latency with crun and runc.");
    Ok(())
}
