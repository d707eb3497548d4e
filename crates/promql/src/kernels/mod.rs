//! Pure numeric kernels of PromQL's functions: range-vector functions over one series' window,
//! per-value math and date functions, classic-histogram quantiles and fractions, and the
//! statistics helpers (quantile, Kahan summation) the aggregations share. No labels, no storage.
