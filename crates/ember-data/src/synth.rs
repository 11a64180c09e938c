//! Synthetic corpora whose entropy rate is known exactly, to measure what an attention variant
//! can and cannot learn: the loss a model reaches is compared with the lowest loss any model
//! could reach (the entropy floor), in nats per character (per token, with the char-level
//! tokenizer).
//!
//! - **copy**: lines of `length` random letters, `|`, the same letters again. Each copied
//!   letter lies `length + 1` positions after its source: a model must attend that far back,
//!   which a sliding window shorter than the distance cannot.
//! - **recall** (associative recall, what induction heads do): lines of `pairs` key–value
//!   pairs with distinct keys, `?`, one of the keys, its value. The value must be found by
//!   matching the key, wherever it stood.
//! - **markov**: a stream from a random Markov chain of `order` over `alphabet` symbols. The
//!   floor is the chain's entropy rate; only the last `order` symbols matter.
//!
//! Every line's layout is fixed, so the separators and the copied or recalled symbols are
//! certain for a model that sees the line from its start; the floor counts them at 0.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A synthetic task and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Random letters, then the same letters again.
    Copy {
        /// Letters per half line (the copy distance is `length + 1`).
        length: usize,
        /// Letters to draw from (`a`, `b`, …).
        alphabet: usize,
    },
    /// Key–value pairs, then a key to recall.
    Recall {
        /// Pairs per line.
        pairs: usize,
        /// Keys to draw from (letters), at least `pairs`.
        keys: usize,
        /// Values to draw from (digits, at most 10).
        values: usize,
    },
    /// A random Markov chain.
    Markov {
        /// Symbols of context the next one depends on.
        order: usize,
        /// Symbols (letters).
        alphabet: usize,
        /// Concentration of the Dirichlet the transition probabilities are drawn from (small:
        /// nearly deterministic transitions; large: nearly uniform).
        alpha: f64,
    },
}

/// The lowest loss any model can reach on a corpus, and how it was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntropyFloor {
    /// The task and its parameters.
    pub task: Task,
    /// The seed the corpus was drawn with.
    pub seed: u64,
    /// Expected loss per character of a model that knows the source, in nats.
    pub nats_per_char: f64,
    /// The same in bits.
    pub bits_per_char: f64,
    /// How the floor follows from the task.
    pub definition: String,
    /// SHA-256 of the corpus text the floor belongs to.
    pub corpus_sha256: String,
}

/// Where the floor of a corpus file is recorded: beside it, `FILE.floor.json`.
pub fn floor_path(corpus: &std::path::Path) -> std::path::PathBuf {
    let mut name = corpus.as_os_str().to_owned();
    name.push(".floor.json");
    std::path::PathBuf::from(name)
}

/// The floor recorded beside the corpus file `corpus`: `None` when there is none, or when it
/// belongs to another text (the corpus has changed since).
pub fn read_floor(corpus: &std::path::Path) -> Option<EntropyFloor> {
    use sha2::Digest;
    let bytes = crate::files::read_regular(&floor_path(corpus), crate::files::limit::CONFIG).ok()?;
    let floor: EntropyFloor = serde_json::from_slice(&bytes).ok()?;
    let mut file = crate::files::open_regular(corpus).ok()?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut file, &mut hasher).ok()?;
    let sha: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    (floor.corpus_sha256 == sha).then_some(floor)
}

impl Task {
    /// Checks the parameters; the error names the option and what is expected.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Task::Copy { length, alphabet } => {
                if length == 0 {
                    return Err("--length must be at least 1".into());
                }
                if !(2..=26).contains(&alphabet) {
                    return Err(format!("--alphabet {alphabet}: the letters are a–z, so 2 to 26"));
                }
            }
            Task::Recall { pairs, keys, values } => {
                if pairs < 2 {
                    return Err("--pairs must be at least 2 (one pair leaves nothing to recall)".into());
                }
                if !(pairs..=26).contains(&keys) {
                    return Err(format!("--keys {keys}: needs --pairs ({pairs}) to 26 distinct letters"));
                }
                if !(2..=10).contains(&values) {
                    return Err(format!("--values {values}: the values are digits, so 2 to 10"));
                }
            }
            Task::Markov { order, alphabet, alpha } => {
                if !(1..=8).contains(&order) {
                    return Err(format!("--order {order}: 1 to 8"));
                }
                if !(2..=26).contains(&alphabet) || alphabet.pow(order as u32) > 1 << 20 {
                    return Err(format!(
                        "--alphabet {alphabet}: 2 to 26 letters, with at most 2^20 contexts (alphabet^order)"
                    ));
                }
                if !(alpha > 0.0 && alpha.is_finite()) {
                    return Err(format!("--alpha {alpha}: a positive number, e.g. 0.5"));
                }
            }
        }
        Ok(())
    }

    /// The task's name.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Copy { .. } => "copy",
            Task::Recall { .. } => "recall",
            Task::Markov { .. } => "markov",
        }
    }
}

fn letter(i: usize) -> char {
    (b'a' + i as u8) as char
}

/// About `chars` characters of the task's text (whole lines), drawn with `seed`, and its
/// entropy floor.
pub fn generate(task: Task, chars: usize, seed: u64) -> (String, EntropyFloor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = String::with_capacity(chars + 64);
    let (nats, definition) = match task {
        Task::Copy { length, alphabet } => {
            while text.len() < chars {
                let half: String = (0..length).map(|_| letter(rng.random_range(0..alphabet))).collect();
                text.push_str(&half);
                text.push('|');
                text.push_str(&half);
                text.push('\n');
            }
            let line = 2 * length + 2;
            (
                length as f64 * (alphabet as f64).ln() / line as f64,
                format!(
                    "each line of {line} characters holds {length} letters drawn uniformly from {alphabet} (ln {alphabet} nats each); the separator, the copy and the newline are certain"
                ),
            )
        }
        Task::Recall { pairs, keys, values } => {
            while text.len() < chars {
                // Distinct keys: a partial Fisher–Yates shuffle.
                let mut pool: Vec<usize> = (0..keys).collect();
                for i in 0..pairs {
                    let j = rng.random_range(i..keys);
                    pool.swap(i, j);
                }
                let vals: Vec<usize> = (0..pairs).map(|_| rng.random_range(0..values)).collect();
                for i in 0..pairs {
                    text.push(letter(pool[i]));
                    text.push(char::from_digit(vals[i] as u32, 10).expect("a digit"));
                }
                let q = rng.random_range(0..pairs);
                text.push('?');
                text.push(letter(pool[q]));
                text.push(char::from_digit(vals[q] as u32, 10).expect("a digit"));
                text.push('\n');
            }
            let line = 2 * pairs + 4;
            let key_nats: f64 = (0..pairs).map(|i| ((keys - i) as f64).ln()).sum();
            let nats = key_nats + pairs as f64 * (values as f64).ln() + (pairs as f64).ln();
            (
                nats / line as f64,
                format!(
                    "each line of {line} characters: {pairs} distinct keys from {keys} letters (ln {keys} + ln {} + … nats), {pairs} values from {values} digits (ln {values} each), a query key among the {pairs} (ln {pairs}); '?', the recalled value and the newline are certain",
                    keys - 1
                ),
            )
        }
        Task::Markov { order, alphabet, alpha } => {
            let chain = MarkovChain::random(order, alphabet, alpha, &mut rng);
            let mut state = 0usize;
            for _ in 0..chars {
                let next = chain.sample(state, &mut rng);
                text.push(letter(next));
                state = chain.advance(state, next);
            }
            (
                chain.entropy_rate(),
                format!(
                    "the entropy rate of the order-{order} chain over {alphabet} letters: Σ over contexts of their stationary probability times the entropy of the next letter"
                ),
            )
        }
    };
    let floor = EntropyFloor {
        task,
        seed,
        nats_per_char: nats,
        bits_per_char: nats / std::f64::consts::LN_2,
        definition,
        corpus_sha256: crate::tokenizer::hex_sha256(text.as_bytes()),
    };
    (text, floor)
}

/// A Markov chain whose state is the last `order` symbols.
struct MarkovChain {
    order: usize,
    alphabet: usize,
    /// `[state][next]` probabilities.
    next: Vec<Vec<f64>>,
}

impl MarkovChain {
    fn random(order: usize, alphabet: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Self {
        let states = alphabet.pow(order as u32);
        let next = (0..states)
            .map(|_| {
                // Dirichlet(α) as normalised Gamma(α) draws (Marsaglia–Tsang, with the boost
                // for α < 1).
                let g: Vec<f64> = (0..alphabet).map(|_| gamma(alpha, rng)).collect();
                let z: f64 = g.iter().sum();
                g.iter().map(|x| x / z).collect()
            })
            .collect();
        Self { order, alphabet, next }
    }

    fn sample(&self, state: usize, rng: &mut ChaCha8Rng) -> usize {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        for (i, &p) in self.next[state].iter().enumerate() {
            acc += p;
            if u < acc {
                return i;
            }
        }
        self.alphabet - 1
    }

    /// The state after `symbol`: drop the oldest of the `order` symbols.
    fn advance(&self, state: usize, symbol: usize) -> usize {
        (state * self.alphabet + symbol) % self.alphabet.pow(self.order as u32)
    }

    /// `Σ_s π(s) H(next | s)`, with `π` the stationary distribution (by power iteration).
    fn entropy_rate(&self) -> f64 {
        let states = self.next.len();
        let mut pi = vec![1.0 / states as f64; states];
        for _ in 0..10_000 {
            let mut out = vec![0.0; states];
            for (s, &ps) in pi.iter().enumerate() {
                for (x, &p) in self.next[s].iter().enumerate() {
                    out[self.advance(s, x)] += ps * p;
                }
            }
            let change: f64 = out.iter().zip(&pi).map(|(a, b)| (a - b).abs()).sum();
            pi = out;
            if change < 1e-13 {
                break;
            }
        }
        pi.iter()
            .zip(&self.next)
            .map(|(ps, row)| ps * row.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum::<f64>())
            .sum()
    }
}

/// A Gamma(`shape`, 1) draw.
fn gamma(shape: f64, rng: &mut ChaCha8Rng) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let (x, u) = (normal(rng), rng.random::<f64>());
        let v = (1.0 + c * x).powi(3);
        if v > 0.0 && u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_repeat_their_first_half() {
        let (text, floor) = generate(Task::Copy { length: 5, alphabet: 4 }, 1000, 1);
        for line in text.lines() {
            let (a, b) = line.split_once('|').expect("a separator");
            assert_eq!((a.len(), a), (5, b));
            assert!(a.chars().all(|c| ('a'..='d').contains(&c)));
        }
        // 5 · ln 4 nats per 12-character line.
        assert!((floor.nats_per_char - 5.0 * 4f64.ln() / 12.0).abs() < 1e-12);
    }

    #[test]
    fn recall_lines_answer_with_the_value_of_the_key() {
        let (text, floor) = generate(
            Task::Recall {
                pairs: 3,
                keys: 5,
                values: 4,
            },
            2000,
            2,
        );
        for line in text.lines() {
            let (pairs, query) = line.split_once('?').expect("a query");
            let pairs: Vec<&[u8]> = pairs.as_bytes().chunks(2).collect();
            assert_eq!(pairs.len(), 3);
            let keys: std::collections::HashSet<u8> = pairs.iter().map(|p| p[0]).collect();
            assert_eq!(keys.len(), 3, "distinct keys");
            let q = query.as_bytes();
            let answer = pairs.iter().find(|p| p[0] == q[0]).expect("the key is among the pairs")[1];
            assert_eq!(q[1], answer);
        }
        let nats = 5f64.ln() + 4f64.ln() + 3f64.ln() + 3.0 * 4f64.ln() + 3f64.ln();
        assert!((floor.nats_per_char - nats / 10.0).abs() < 1e-12);
    }

    #[test]
    fn markov_entropy_rate_matches_the_empirical_loss_of_the_true_chain() {
        let task = Task::Markov {
            order: 2,
            alphabet: 3,
            alpha: 0.5,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let chain = MarkovChain::random(2, 3, 0.5, &mut rng);
        // Draw a long stream from the chain and score it with its own probabilities.
        let (mut state, mut nll, n) = (0usize, 0.0, 400_000);
        for _ in 0..n {
            let x = chain.sample(state, &mut rng);
            nll -= chain.next[state][x].ln();
            state = chain.advance(state, x);
        }
        let rate = chain.entropy_rate();
        assert!(
            (nll / n as f64 - rate).abs() < 0.01,
            "empirical {} vs rate {rate}",
            nll / n as f64
        );
        // A uniform chain's rate is ln(alphabet).
        let uniform = MarkovChain {
            order: 1,
            alphabet: 4,
            next: vec![vec![0.25; 4]; 4],
        };
        assert!((uniform.entropy_rate() - 4f64.ln()).abs() < 1e-12);
        let (text, floor) = generate(task, 500, 4);
        assert_eq!(text.len(), 500);
        assert!(floor.nats_per_char > 0.0 && floor.nats_per_char < 3f64.ln());
    }

    #[test]
    fn the_same_seed_gives_the_same_corpus() {
        let task = Task::Copy { length: 8, alphabet: 8 };
        assert_eq!(generate(task, 300, 7).0, generate(task, 300, 7).0);
        assert_ne!(generate(task, 300, 7).0, generate(task, 300, 8).0);
    }

    #[test]
    fn a_floor_beside_its_corpus_is_read_only_for_that_text() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("copy.txt");
        let (text, floor) = generate(Task::Copy { length: 4, alphabet: 3 }, 200, 1);
        std::fs::write(&corpus, &text).unwrap();
        std::fs::write(floor_path(&corpus), serde_json::to_string(&floor).unwrap()).unwrap();
        assert_eq!(floor_path(&corpus), dir.path().join("copy.txt.floor.json"));
        assert_eq!(read_floor(&corpus), Some(floor));
        std::fs::write(&corpus, "another text").unwrap();
        assert_eq!(read_floor(&corpus), None);
        assert_eq!(read_floor(&dir.path().join("none.txt")), None);
    }

    #[test]
    fn parameters_out_of_range_are_named() {
        assert!(
            Task::Copy { length: 0, alphabet: 4 }
                .validate()
                .unwrap_err()
                .contains("--length")
        );
        assert!(
            Task::Recall {
                pairs: 8,
                keys: 4,
                values: 10
            }
            .validate()
            .unwrap_err()
            .contains("--keys 4")
        );
        assert!(
            Task::Markov {
                order: 3,
                alphabet: 4,
                alpha: 0.0
            }
            .validate()
            .unwrap_err()
            .contains("--alpha")
        );
    }
}
