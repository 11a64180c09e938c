//! Turning next-token logits into a token: greedy, temperature, top-k and top-p (nucleus).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::ModelError;

/// Picks the next token from a row of logits.
#[derive(Debug, Clone)]
pub struct Sampler {
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// `temperature` 0 means greedy (always the most likely token); otherwise logits are
    /// divided by it, the `top_k` most likely tokens are kept, then the smallest set whose
    /// probability reaches `top_p`, and a token is drawn from what remains with a generator
    /// seeded by `seed`.
    pub fn new(temperature: f64, top_k: Option<usize>, top_p: Option<f64>, seed: u64) -> Result<Self, ModelError> {
        if !(temperature >= 0.0) || !temperature.is_finite() {
            return Err(ModelError::InvalidSampling {
                option: "temperature",
                value: temperature.to_string(),
                problem: "must be 0 (greedy) or a positive number such as 0.8".into(),
            });
        }
        if top_k == Some(0) {
            return Err(ModelError::InvalidSampling {
                option: "top-k",
                value: "0".into(),
                problem: "must keep at least one token; leave it out to keep all".into(),
            });
        }
        if let Some(p) = top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ModelError::InvalidSampling {
                option: "top-p",
                value: p.to_string(),
                problem: "must be in (0, 1]".into(),
            });
        }
        Ok(Self {
            temperature,
            top_k,
            top_p,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })
    }

    /// A greedy sampler.
    pub fn greedy() -> Self {
        Self::new(0.0, None, None, 0).expect("valid")
    }

    /// The next token id.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits) as u32;
        }
        let probs = self.distribution(logits);
        let u: f64 = self.rng.random();
        let mut acc = 0.0;
        for &(id, p) in &probs {
            acc += p;
            if u < acc {
                return id as u32;
            }
        }
        probs.last().expect("at least one token").0 as u32
    }

    /// The (token, probability) pairs sampling draws from, most likely first; probabilities
    /// sum to one.
    pub fn distribution(&self, logits: &[f32]) -> Vec<(usize, f64)> {
        let t = self.temperature.max(f64::MIN_POSITIVE);
        let mut ranked: Vec<(usize, f64)> = logits.iter().enumerate().map(|(i, &l)| (i, l as f64 / t)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(k) = self.top_k {
            ranked.truncate(k);
        }
        let max = ranked[0].1;
        let mut total = 0.0;
        for entry in &mut ranked {
            entry.1 = (entry.1 - max).exp();
            total += entry.1;
        }
        for entry in &mut ranked {
            entry.1 /= total;
        }
        if let Some(p) = self.top_p {
            let mut acc = 0.0;
            let keep = ranked
                .iter()
                .position(|&(_, q)| {
                    acc += q;
                    acc >= p
                })
                .map_or(ranked.len(), |i| i + 1);
            ranked.truncate(keep);
            let total: f64 = ranked.iter().map(|e| e.1).sum();
            for entry in &mut ranked {
                entry.1 /= total;
            }
        }
        ranked
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_largest_logit() {
        assert_eq!(Sampler::greedy().sample(&[0.1, 2.0, -1.0, 2.0]), 1);
    }

    #[test]
    fn temperature_scales_the_softmax() {
        // logits [ln 3, 0] at T = 1 → [0.75, 0.25]; at T = 2 → [√3, 1]/(√3 + 1).
        let logits = [3f32.ln(), 0.0];
        let d = Sampler::new(1.0, None, None, 0).unwrap().distribution(&logits);
        assert!((d[0].1 - 0.75).abs() < 1e-6);
        let d = Sampler::new(2.0, None, None, 0).unwrap().distribution(&logits);
        let s3 = 3f64.sqrt();
        assert!((d[0].1 - s3 / (s3 + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        // probabilities ∝ [4, 3, 2, 1] / 10
        let logits: Vec<f32> = [4f32, 3.0, 2.0, 1.0].iter().map(|p| p.ln()).collect();
        let d = Sampler::new(1.0, Some(2), None, 0).unwrap().distribution(&logits);
        assert_eq!(d.iter().map(|e| e.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!((d[0].1 - 4.0 / 7.0).abs() < 1e-6);
        // top-p 0.7: 0.4 + 0.3 reaches it; 0.71 needs the third token.
        let d = Sampler::new(1.0, None, Some(0.7), 0).unwrap().distribution(&logits);
        assert_eq!(d.len(), 2);
        let d = Sampler::new(1.0, None, Some(0.71), 0).unwrap().distribution(&logits);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn sampling_follows_the_distribution_and_the_seed() {
        let logits: Vec<f32> = [0.7f32, 0.2, 0.1].iter().map(|p| p.ln()).collect();
        let mut s = Sampler::new(1.0, None, None, 42).unwrap();
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[s.sample(&logits) as usize] += 1;
        }
        assert!((counts[0] as f64 / 20_000.0 - 0.7).abs() < 0.02, "{counts:?}");
        let draw = |seed| {
            let mut s = Sampler::new(1.0, None, None, seed).unwrap();
            (0..32).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn bad_options_are_rejected_with_the_option_named() {
        assert!(
            Sampler::new(-1.0, None, None, 0)
                .unwrap_err()
                .to_string()
                .starts_with("temperature = -1")
        );
        assert!(
            Sampler::new(1.0, Some(0), None, 0)
                .unwrap_err()
                .to_string()
                .starts_with("top-k = 0")
        );
        assert!(
            Sampler::new(1.0, None, Some(1.5), 0)
                .unwrap_err()
                .to_string()
                .starts_with("top-p = 1.5")
        );
    }
}
