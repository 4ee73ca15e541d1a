//! Parameter initialisation as PyTorch does it by default: `linear` and `conv2d` weights
//! and biases uniform in `±1/sqrt(fan_in)` (kaiming uniform with a = sqrt(5)), and the
//! explicit initialisers of `param` statements.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// How to fill one parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// PyTorch's default for weights and biases of a layer with this fan-in.
    Default {
        fan_in: usize,
    },
    Zeros,
    Ones,
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        low: f64,
        high: f64,
    },
    XavierUniform {
        fan_in: usize,
        fan_out: usize,
    },
}

impl Init {
    pub fn fill(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        match *self {
            Init::Default { fan_in } => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal { mean, std } => (0..n)
                .map(|_| {
                    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                    let u2: f64 = rng.random();
                    mean + std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
                })
                .collect(),
            Init::Uniform { low, high } => {
                (0..n).map(|_| rng.random_range(low..high.max(low + f64::EPSILON))).collect()
            }
            Init::XavierUniform { fan_in, fan_out } => {
                let bound = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
        }
    }
}
