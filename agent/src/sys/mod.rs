//! The few kernel calls that std, nix and rustix do not wrap safely, behind safe functions.
//! Every `unsafe` block of the agent lives here, each small and with a `// SAFETY:` comment
//! (the crate denies `unsafe_code` everywhere else); everything above this module is safe
//! code.

pub mod clone3;
pub mod fd_pass;
pub mod loopback;
pub mod malloc;
pub mod mount_api;
pub mod netns_exec;
pub mod netns_socket;
pub mod pidfd;
pub mod seccomp;
