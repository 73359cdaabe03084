//! The few kernel calls that std and nix do not wrap safely. Every `unsafe` block of the agent
//! lives here, each small and commented; everything above this module is safe code.

pub mod clone3;
pub mod loopback;
pub mod netns_exec;
pub mod netns_socket;
pub mod pidfd;
