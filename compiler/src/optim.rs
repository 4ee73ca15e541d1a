//! Optimisers, with PyTorch's update rules: SGD with momentum, dampening, Nesterov momentum
//! and weight decay, and Adam, on f32 parameters in f32 arithmetic as PyTorch does.

/// An optimiser's settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Optimizer {
    Sgd { lr: f64, momentum: f64, dampening: f64, nesterov: bool, weight_decay: f64 },
    Adam { lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

/// The optimiser's memory of past steps, one buffer per parameter, allocated once.
pub struct State {
    step: u64,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

impl State {
    pub fn new(sizes: &[usize]) -> State {
        State {
            step: 0,
            first: sizes.iter().map(|&n| vec![0.0; n]).collect(),
            second: sizes.iter().map(|&n| vec![0.0; n]).collect(),
        }
    }
}

impl State {
    /// The step count and the buffers, to save in a checkpoint.
    pub fn parts(&self) -> (u64, &[Vec<f32>], &[Vec<f32>]) {
        (self.step, &self.first, &self.second)
    }

    /// The state saved by `parts`.
    pub fn from_parts(step: u64, first: Vec<Vec<f32>>, second: Vec<Vec<f32>>) -> State {
        State { step, first, second }
    }
}

impl Optimizer {
    /// Refuses the settings PyTorch refuses, with its reason: Nesterov momentum looks ahead
    /// along the momentum buffer, so it needs one, undamped.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Optimizer::Sgd { momentum, dampening, nesterov: true, .. } if momentum <= 0.0 || dampening != 0.0 => {
                Err(format!(
                    "Nesterov momentum requires a momentum and zero dampening; \
                     `sgd` has momentum = {momentum} and dampening = {dampening}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Updates every parameter in place from its gradient.
    pub fn step(&self, state: &mut State, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        self.begin(state);
        for (k, (param, grad)) in params.iter_mut().zip(grads).enumerate() {
            self.update(state, k, param, grad);
        }
    }

    /// Counts a step; call before the `update`s of its parameters.
    pub fn begin(&self, state: &mut State) {
        state.step += 1;
    }

    /// Updates parameter `k` in place from its gradient.
    pub fn update(&self, state: &mut State, k: usize, param: &mut [f32], grad: &[f32]) {
        // The same loops compiled for the widest vectors the CPU has: the portable build
        // targets SSE2, four lanes. Every operation is elementwise, so the width changes
        // no result.
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { self.update_avx512(state, k, param, grad) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { self.update_avx2(state, k, param, grad) };
            }
        }
        self.update_lanes(state, k, param, grad)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn update_avx512(&self, state: &mut State, k: usize, param: &mut [f32], grad: &[f32]) {
        self.update_lanes(state, k, param, grad)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn update_avx2(&self, state: &mut State, k: usize, param: &mut [f32], grad: &[f32]) {
        self.update_lanes(state, k, param, grad)
    }

    /// The update's loops, inlined into each of the versions above.
    #[inline(always)]
    fn update_lanes(&self, state: &mut State, k: usize, param: &mut [f32], grad: &[f32]) {
        match *self {
            Optimizer::Sgd { lr, momentum, dampening, nesterov, weight_decay } => {
                let (lr, momentum, weight_decay) = (lr as f32, momentum as f32, weight_decay as f32);
                let undamped = (1.0 - dampening) as f32;
                let buffer = &mut state.first[k];
                // One loop per case, without branches inside, so that each vectorises.
                let decayed = |p: f32, g: f32| g + weight_decay * p;
                if momentum == 0.0 {
                    for (p, &g) in param.iter_mut().zip(grad) {
                        *p -= lr * decayed(*p, g);
                    }
                } else if state.step == 1 {
                    // PyTorch starts the buffer at the first gradient, undamped.
                    for ((p, &g), b) in param.iter_mut().zip(grad).zip(buffer.iter_mut()) {
                        let g = decayed(*p, g);
                        *b = g;
                        *p -= lr * if nesterov { g + momentum * g } else { g };
                    }
                } else {
                    for ((p, &g), b) in param.iter_mut().zip(grad).zip(buffer.iter_mut()) {
                        let g = decayed(*p, g);
                        *b = momentum * *b + undamped * g;
                        *p -= lr * if nesterov { g + momentum * *b } else { *b };
                    }
                }
            }
            Optimizer::Adam { lr, beta1, beta2, eps, weight_decay } => {
                let (m, v) = (&mut state.first[k], &mut state.second[k]);
                let t = state.step as i32;
                // The bias corrections in f64, as PyTorch computes them on the host.
                let (c1, c2) = ((1.0 - beta1.powi(t)) as f32, (1.0 - beta2.powi(t)) as f32);
                let (lr, beta1, beta2, eps, weight_decay) =
                    (lr as f32, beta1 as f32, beta2 as f32, eps as f32, weight_decay as f32);
                for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g + weight_decay * *p;
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_with_momentum_matches_pytorch_by_hand() {
        // PyTorch: buf = g on the first step, then buf = m buf + g; p -= lr buf.
        let opt = Optimizer::Sgd { lr: 0.1, momentum: 0.9, dampening: 0.0, nesterov: false, weight_decay: 0.0 };
        let mut state = State::new(&[1]);
        let mut p = vec![vec![1.0]];
        opt.step(&mut state, &mut p, &[vec![2.0]]);
        assert!((p[0][0] - 0.8).abs() < 1e-6);
        opt.step(&mut state, &mut p, &[vec![2.0]]);
        assert!((p[0][0] - (0.8 - 0.1 * 3.8)).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let opt = Optimizer::Adam { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let mut state = State::new(&[2]);
        let mut p = vec![vec![1.0, -1.0]];
        opt.step(&mut state, &mut p, &[vec![5.0, -0.1]]);
        assert!((p[0][0] - 0.99).abs() < 1e-6 && (p[0][1] + 0.99).abs() < 1e-6);
    }
}
