//! `bosun-init`: the small helper the agent runs for each container start
//! (`bosun-init __container-init`) and each exec into a container (`bosun-init __exec`). It is
//! the same code as the agent's hidden subcommands, in a binary without the agent's runtime,
//! so a process start costs a fraction of loading the whole agent.

#![forbid(unsafe_code)]

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("__container-init") => bosun_agent::runtime::init::container_init_main(),
        Some("__exec") => bosun_agent::runtime::exec::exec_main(),
        Some("__spawner") => bosun_agent::runtime::exec_spawner::spawner_main(),
        Some("__pod-init") => bosun_agent::runtime::pod_init::pod_init_main(),
        Some("__exec-stream") => bosun_agent::runtime::exec_stream::helper_main(),
        _ => {
            eprintln!(
                "bosun-init is started by bosun-agent (__container-init | __exec | __spawner | __exec-stream | __pod-init)"
            );
            std::process::exit(2);
        }
    }
}
