//! The programs a run compiles, one per batch size met, and the dropout masks of a step.

use super::*;

/// The compiled programs of a run, one per batch size met (the last batch of an epoch
/// may be smaller).
pub(super) struct Compiled<'a> {
    pub(super) model: &'a CheckedModel,
    pub(super) loss: Loss,
    pub(super) optimizer: &'a Optimizer,
    pub(super) executor: &'a dyn Executor,
    pub(super) steps: HashMap<usize, CompiledStep>,
    pub(super) evaluations: HashMap<usize, Box<dyn Program>>,
}

impl Compiled<'_> {
    /// The training step for batches of `n`.
    pub(super) fn step(&mut self, n: usize) -> Result<&mut CompiledStep, String> {
        if let Entry::Vacant(slot) = self.steps.entry(n) {
            let grad = driver::training_gradient(self.model, self.loss, n).map_err(|e| e.message)?;
            let masks = grad
                .dropout_masks
                .iter()
                .map(|&(i, probability)| Mask { probability, len: elements(&grad, grad.params[i].value.0 as usize) })
                .collect();
            slot.insert(CompiledStep { step: self.executor.train_step(&grad, self.optimizer)?, masks });
        }
        Ok(self.steps.get_mut(&n).expect("just compiled"))
    }

    /// The loss and the output for batches of `n`, without dropout.
    pub(super) fn evaluation(&mut self, n: usize) -> Result<&mut Box<dyn Program>, String> {
        if let Entry::Vacant(slot) = self.evaluations.entry(n) {
            let f = driver::evaluation(self.model, self.loss, Some(n)).map_err(|e| e.message)?;
            slot.insert(self.executor.program(&f)?);
        }
        Ok(self.evaluations.get_mut(&n).expect("just compiled"))
    }
}

/// A training step with the dropout masks it takes.
pub(super) struct CompiledStep {
    pub(super) step: Box<dyn TrainStep>,
    pub(super) masks: Vec<Mask>,
}

/// A dropout mask: the probability of dropping and the number of elements.
pub(super) struct Mask {
    pub(super) probability: f64,
    pub(super) len: usize,
}

/// The number of elements of a value of concrete shape.
pub(super) fn elements(f: &Function, value: usize) -> usize {
    f.values[value].0.shape.0.iter().map(|d| d.as_const().unwrap_or(1) as usize).product()
}

/// Fills the dropout masks of a step (0 with probability p, else 1 / (1 - p)) from a
/// generator seeded by the run's seed, the epoch and the step, so a resumed run draws the
/// same masks.
pub(super) fn draw_masks(masks: &mut [Vec<f32>], kinds: &[Mask], seed: u64, epoch: usize, step: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((epoch as u64) << 40) ^ ((step as u64) << 8) ^ 0x5eed);
    for (mask, kind) in masks.iter_mut().zip(kinds) {
        let p = kind.probability;
        let keep = (1.0 / (1.0 - p)) as f32;
        mask.resize(kind.len, 0.0);
        for v in mask.iter_mut() {
            *v = if rng.random::<f64>() < p { 0.0 } else { keep };
        }
    }
}
