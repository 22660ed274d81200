//! [`Order`]: the order of a bf16 product's roundings, which is the instruction's: one
//! chain (`vdpbf16ps`) or blocks of two chains (AMX's `tdpbf16ps`).

use crate::caps;

/// Input pairs in one block of [`Order::Tiles`]: one AMX tile's 64-byte row of pairs.
pub const BLOCK: usize = 16;

/// How a bf16 product sums `y[i][j] = Σ_k bf16(x[i][k]) · W[j][k]`; see the
/// [module docs](super) for the rules of one step. The two orders give results that differ
/// in the last bits; each is the same whatever the batch size, blocking or thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// One chain over the inputs in ascending order (AVX-512 BF16's `vdpbf16ps`).
    Chain,
    /// The inputs in blocks of `2 ·` [`BLOCK`] (the last completed with `+0`): each block's
    /// even inputs summed in one chain from `+0`, its odd ones in another, the two added,
    /// and that added to the running sum, which starts at `+0` (AMX-BF16's `tdpbf16ps`).
    Tiles,
}

impl Order {
    /// The order of the fastest kernel on this CPU: [`Order::Tiles`] where the AMX tiles can
    /// run ([`Caps::amx_bf16`](crate::Caps::amx_bf16)), else [`Order::Chain`].
    pub fn native() -> Self {
        if caps().amx_bf16() {
            Order::Tiles
        } else {
            Order::Chain
        }
    }
}
