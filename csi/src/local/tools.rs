//! The e2fsprogs and util-linux commands the driver runs: `mkfs.ext4`, `resize2fs`, `losetup`.
//!
//! Loop devices go through `losetup` rather than our own LOOP_CTL_GET_FREE/LOOP_CONFIGURE
//! ioctls: it already retries the race between finding a free device and binding it, finds a
//! file's device through sysfs (`-j`, what makes stage/unstage/delete idempotent across a driver
//! restart), and keeps this crate free of `unsafe`. One exec per stage/unstage is cheap next to
//! the mount itself.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A command that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("running {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} {args} failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        args: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("{program} printed {output:?}, not a loop device")]
    Output {
        program: &'static str,
        output: String,
    },
}

async fn run(program: &'static str, args: &[&std::ffi::OsStr]) -> Result<String, ToolError> {
    run_ok(program, args, &[0]).await
}

/// Runs `program`; the exit codes in `ok` are success.
async fn run_ok(
    program: &'static str,
    args: &[&std::ffi::OsStr],
    ok: &[i32],
) -> Result<String, ToolError> {
    let out = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .await
        .map_err(|source| ToolError::Spawn { program, source })?;
    if !out.status.code().is_some_and(|c| ok.contains(&c)) {
        return Err(ToolError::Failed {
            program,
            args: args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes an ext4 filesystem on the file `image`: 4 KiB blocks, no blocks reserved for root
/// (the volume's capacity is what a pod can write), lazy inode tables for a fast create.
pub async fn mkfs_ext4(image: &Path) -> Result<(), ToolError> {
    run(
        "mkfs.ext4",
        &[
            "-F".as_ref(),
            "-q".as_ref(),
            "-b".as_ref(),
            "4096".as_ref(),
            "-m".as_ref(),
            "0".as_ref(),
            "-E".as_ref(),
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard".as_ref(),
            image.as_os_str(),
        ],
    )
    .await
    .map(drop)
}

/// Checks the unmounted ext4 filesystem on `device`, fixing what is safe to fix (resize2fs
/// wants a freshly checked filesystem before an offline resize). Exit 1 means "fixed".
pub async fn e2fsck(device: &Path) -> Result<(), ToolError> {
    run_ok(
        "e2fsck",
        &["-f".as_ref(), "-p".as_ref(), device.as_os_str()],
        &[0, 1],
    )
    .await
    .map(drop)
}

/// Grows the ext4 filesystem on `device` to the device's size: online (the kernel's resize
/// ioctl, CAP_SYS_RESOURCE) when it is mounted, offline when it is not.
pub async fn resize2fs(device: &Path) -> Result<(), ToolError> {
    run("resize2fs", &[device.as_os_str()]).await.map(drop)
}

fn device_from(program: &'static str, output: &str) -> Result<Option<PathBuf>, ToolError> {
    let Some(line) = output.lines().find(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    // `losetup -j`: "/dev/loop3: []: (/path)"; `--show`: "/dev/loop3".
    let device = line.split(':').next().unwrap_or_default().trim();
    if !device.starts_with("/dev/loop") {
        return Err(ToolError::Output {
            program,
            output: output.to_owned(),
        });
    }
    Ok(Some(PathBuf::from(device)))
}

/// The loop device `image` is attached to, if any.
pub async fn loop_find(image: &Path) -> Result<Option<PathBuf>, ToolError> {
    let out = run("losetup", &["-j".as_ref(), image.as_os_str()]).await?;
    device_from("losetup", &out)
}

/// Attaches `image` to a free loop device.
pub async fn loop_attach(image: &Path) -> Result<PathBuf, ToolError> {
    let out = run(
        "losetup",
        &["--find".as_ref(), "--show".as_ref(), image.as_os_str()],
    )
    .await?;
    device_from("losetup", &out)?.ok_or(ToolError::Output {
        program: "losetup",
        output: out,
    })
}

/// Makes the loop device see its backing file's new size.
pub async fn loop_set_capacity(device: &Path) -> Result<(), ToolError> {
    run("losetup", &["--set-capacity".as_ref(), device.as_os_str()])
        .await
        .map(drop)
}

/// Detaches a loop device.
pub async fn loop_detach(device: &Path) -> Result<(), ToolError> {
    run("losetup", &["--detach".as_ref(), device.as_os_str()])
        .await
        .map(drop)
}

/// Detaches `device` (holding `image`) and waits until the kernel has let go of it: while
/// anyone still has the device open the kernel only marks it for autoclear, and the image
/// stays attached until that last close. False if it is still attached after `timeout`.
pub async fn loop_detach_and_wait(
    device: &Path,
    image: &Path,
    timeout: std::time::Duration,
) -> Result<bool, ToolError> {
    loop_detach(device).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if loop_find(image).await?.is_none() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_losetup_output() {
        let j = "/dev/loop3: []: (/tmp/x/vol.img)\n";
        assert_eq!(
            device_from("losetup", j).unwrap(),
            Some(PathBuf::from("/dev/loop3"))
        );
        assert_eq!(device_from("losetup", "").unwrap(), None);
        assert_eq!(
            device_from("losetup", "/dev/loop12\n").unwrap(),
            Some(PathBuf::from("/dev/loop12"))
        );
        assert!(device_from("losetup", "garbage").is_err());
    }
}
