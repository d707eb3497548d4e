//! Query values: scalars, strings, instant vectors and range vectors (matrices).

use vigil_model::Labels;

/// One float sample of a series: milliseconds and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub t: i64,
    pub v: f64,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector (or of a range query's result).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<Point>,
}

/// A query's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Point),
    String { t: i64, s: String },
    Vector(Vec<VectorSample>),
    Matrix(Vec<Series>),
}
