//! What the kernel tests share.

/// `n` values in [-1, 1) from `seed`, every 97th scaled by 20: mixed magnitudes with an
/// occasional outlier, as in real activations. (The same values as
/// `llmdrop::testkit::random_activations`, which this crate cannot depend on.)
pub fn random_activations(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let x: f32 = rng.random_range(-1.0..1.0);
            if i % 97 == 0 {
                x * 20.0
            } else {
                x
            }
        })
        .collect()
}
