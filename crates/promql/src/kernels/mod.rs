//! Pure numeric kernels of PromQL's functions: range-vector functions over one series' window,
//! per-value math and date functions, classic-histogram quantiles and fractions, and the
//! statistics helpers (quantile, Kahan summation) the aggregations share. No labels, no storage.

pub mod histogram;
pub mod math;
pub mod range;
pub mod stats;

pub use histogram::{bucket_fraction, bucket_quantile, Bucket, BucketQuantileFlags};
pub use range::{KernelError, RangeFunction, Window};
pub use stats::{quantile, KahanSum, MeanAccumulator};
