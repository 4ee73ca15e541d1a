//! Measuring a model on a data set (loss, accuracy, confusion matrix) and over a grid of
//! points for the decision-boundary picture.

use super::*;

/// What measuring a model on a data set needs to know of the run.
pub(super) struct Measure<'a> {
    pub(super) config: &'a Config,
    pub(super) layout: &'a Layout,
}

impl Measure<'_> {
    /// Accuracy, mean loss and confusion matrix of the model on a data set.
    #[allow(clippy::type_complexity)]
    pub(super) fn evaluate(
        &self,
        compiled: &mut Compiled<'_>,
        set: &Dataset,
        params: &[Vec<f32>],
    ) -> Result<(Option<f64>, f64, Option<Vec<Vec<usize>>>), String> {
        let (outputs, target_width) = (self.layout.outputs, self.layout.target_width);
        let classes = if self.config.settings.loss == Loss::CrossEntropy { outputs } else { 2 };
        let mut confusion = vec![vec![0usize; classes]; classes];
        let (mut correct, mut loss_sum) = (0usize, 0.0);
        let batch = self.config.settings.batch.min(set.n).max(1);
        let per_example: usize = self.layout.input_shape[1..].iter().product();
        let mut inputs = vec![0.0f32; batch * per_example];
        let mut targets = vec![0.0f32; batch * target_width];
        let mut out = vec![0.0f32; batch * outputs];
        let mut loss = [0.0f32];
        let rows: Vec<usize> = (0..set.n).collect();
        for chunk_rows in rows.chunks(batch) {
            let n = chunk_rows.len();
            let (x, t) = (&mut inputs[..n * per_example], &mut targets[..n * target_width]);
            set.gather(chunk_rows, x, t, target_width);
            let mut args: Vec<&[f32]> = vec![x, t];
            args.extend(params.iter().map(Vec::as_slice));
            compiled.evaluation(n)?.run(&args, &mut [&mut loss, &mut out[..n * outputs]]);
            loss_sum += f64::from(loss[0]) * n as f64;
            for (i, &row) in chunk_rows.iter().enumerate() {
                let scores = &out[i * outputs..(i + 1) * outputs];
                let predicted = if outputs == 1 {
                    usize::from(scores[0] > 0.5)
                } else {
                    scores
                        .iter()
                        .enumerate()
                        .fold((0, f32::NEG_INFINITY), |best, (k, &v)| if v > best.1 { (k, v) } else { best })
                        .0
                };
                let truth = set.labels[row] as usize;
                correct += usize::from(predicted == truth);
                if truth < classes && predicted < classes {
                    confusion[truth][predicted] += 1;
                }
            }
        }
        Ok((Some(correct as f64 / set.n.max(1) as f64), loss_sum / set.n.max(1) as f64, Some(confusion)))
    }
}

/// The model's prediction over a grid covering 2-D data, for the decision-boundary image.
pub(super) fn boundary_grid(
    model: &CheckedModel,
    executor: &dyn Executor,
    data: &Dataset,
    params: &[Vec<f32>],
    outputs: usize,
) -> Result<crate::plots::Boundary, String> {
    const N: usize = 120;
    let xs: Vec<f64> = data.features.iter().step_by(2).copied().collect();
    let ys: Vec<f64> = data.features.iter().skip(1).step_by(2).copied().collect();
    let range = |v: &[f64]| {
        let (lo, hi) = (v.iter().copied().fold(f64::MAX, f64::min), v.iter().copied().fold(f64::MIN, f64::max));
        let margin = (hi - lo).max(1e-3) * 0.1;
        (lo - margin, hi + margin)
    };
    let (x, y) = (range(&xs), range(&ys));
    let mut points = Vec::with_capacity(2 * N * N);
    for row in 0..N {
        for col in 0..N {
            points.push((x.0 + (col as f64 + 0.5) * (x.1 - x.0) / N as f64) as f32);
            points.push((y.0 + (row as f64 + 0.5) * (y.1 - y.0) / N as f64) as f32);
        }
    }
    let forward = driver::optimized_inference(model, Some(N * N)).map_err(|e| e.message)?;
    let mut args: Vec<&[f32]> = vec![&points];
    args.extend(params.iter().map(Vec::as_slice));
    let mut out = vec![0.0f32; N * N * outputs];
    executor.program(&forward)?.run(&args, &mut [&mut out]);
    let cells = out
        .chunks(outputs)
        .map(|row| {
            let row: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
            if outputs == 1 {
                let p = row[0].clamp(0.0, 1.0);
                (usize::from(p > 0.5), p.max(1.0 - p))
            } else {
                // Softmax confidence, mapped so that a uniform guess is 0.5.
                let top = row.iter().copied().fold(f64::MIN, f64::max);
                let total: f64 = row.iter().map(|v| (v - top).exp()).sum();
                let (class, _) =
                    row.iter().enumerate().fold((0, f64::MIN), |b, (k, &v)| if v > b.1 { (k, v) } else { b });
                let confidence = 1.0 / total;
                let k = outputs as f64;
                (class, 0.5 + 0.5 * ((confidence - 1.0 / k) / (1.0 - 1.0 / k)).clamp(0.0, 1.0))
            }
        })
        .collect();
    Ok(crate::plots::Boundary { n: N, x, y, cells })
}
