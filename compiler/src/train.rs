//! The typed configuration of a `train` block: its data sources, loss, optimiser and
//! settings with their defaults, each value evaluated by the check. The runtime reads this
//! and never the block's syntax.

use crate::checked::CheckedModel;
use crate::ir::Loss;
use crate::optim::Optimizer;
use nnc_grammar::Span;

/// Which column of a CSV file holds the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelColumn {
    First,
    Last,
    Index(usize),
}

/// The point sets a `train` block can generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    Xor,
    Moons,
    Circles,
    Spirals,
    Blobs,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::Xor => "xor",
            Generator::Moons => "moons",
            Generator::Circles => "circles",
            Generator::Spirals => "spirals",
            Generator::Blobs => "blobs",
        }
    }
}

/// Where a `train` block's examples come from. Paths are as written, relative to the `.nn`
/// file.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    Csv { path: String, label: LabelColumn, scale: f64, header: Option<bool> },
    Idx { images: String, labels: String, scale: f64 },
    Npy { inputs: String, labels: String, scale: f64 },
    Generated { kind: Generator, samples: usize, noise: f64, classes: usize, seed: u64 },
}

/// The settings of a `train` block, with the defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The block, for messages.
    pub span: Span,
    /// The model as named (its arguments are in the block's checked model).
    pub model: String,
    pub data: DataSource,
    /// A separate test set, instead of a split of the data.
    pub test: Option<DataSource>,
    pub loss: Loss,
    pub optimizer: Optimizer,
    /// The fraction of the data to train on; the rest is the test set.
    pub split: f64,
    pub batch: usize,
    pub epochs: usize,
    pub seed: u64,
    /// Where to save the trained weights, as written.
    pub save: Option<String>,
    /// The run directory, as written; `runs/<model>` when not given.
    pub out: Option<String>,
    /// Weights to start from, as written.
    pub init: Option<String>,
}

/// A `train` block as checked: its settings and its model with the block's arguments.
#[derive(Clone, Debug)]
pub struct CheckedTrain {
    pub config: TrainConfig,
    pub model: CheckedModel,
}
