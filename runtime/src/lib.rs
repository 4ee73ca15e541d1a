//! The runtime of nnc: data sources, initialisation, optimisers, the training loop and
//! checkpoints, around the executor that runs the compiled training step.

pub mod checkpoint;
pub mod data;
pub mod executor;
pub mod init;
pub mod interchange;
pub mod optim;
pub mod plots;
pub mod train;
