//! The LogQL syntax tree: what the parser produces and the engine compiles.

use std::fmt;

use vigil_model::Matcher;

/// A whole LogQL query: either a log query (streams of lines) or a metric query (samples).
#[derive(Debug, Clone)]
pub enum Expr {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// `{selector} | stage | stage ...`
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// Stream matchers; the parser guarantees at least one matcher that does not match "".
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

/// One stage of a log pipeline, in query order.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `|= "a" or "b"`, `!= "a"`, `|~ "re"`, `!~ "re"`, `|> "pattern"`, `!> "pattern"`,
    /// `|= ip("...")`. Several alternatives joined with `or` match when any matches (for the
    /// negative operators: when none matches).
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp`, `| pattern`, `| unpack`.
    Parser(ParserStage),
    /// `| level="error" and status >= 500`, also a bare `| __error__=""`.
    LabelFilter(LabelFilterExpr),
    /// `| line_format "template"` (the template source, unescaped).
    LineFormat(String),
    /// `| label_format a="{{.b}}", c=d`
    LabelFormat(Vec<LabelFormatItem>),
    /// `| drop a, b="x", c=~"y"`
    Drop(Vec<LabelSelection>),
    /// `| keep a, b="x"`
    Keep(Vec<LabelSelection>),
    /// `| decolorize`
    Decolorize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~`
    Regex,
    /// `!~`
    NotRegex,
    /// `|>`
    Pattern,
    /// `!>`
    NotPattern,
}

#[derive(Debug, Clone)]
pub struct LineFilter {
    pub op: LineFilterOp,
    /// At least one; more when joined with `or`.
    pub values: Vec<LineFilterValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineFilterValue {
    /// A string (already unescaped): a substring, a regex or a pattern depending on the op.
    Text(String),
    /// `ip("...")`: the argument (a single address, a CIDR or a range `a-b`).
    Ip(String),
}

#[derive(Debug, Clone)]
pub enum ParserStage {
    /// `| json` (no params: every field, flattened) or `| json a="x.y", b` (a bare name is
    /// the same as `b="b"`).
    Json { params: Vec<(String, String)> },
    /// `| logfmt [--strict] [--keep-empty] [a="x", b]`
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    /// `| regexp "re"` (at least one named capture, checked by the parser).
    Regexp(String),
    /// `| pattern "<a> - <b>"` (checked by the parser).
    Pattern(String),
    /// `| unpack`
    Unpack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Label filter expressions: `and` binds tighter than `or`; `,` and a space mean `and`.
#[derive(Debug, Clone)]
pub enum LabelFilterExpr {
    And(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    Or(Box<LabelFilterExpr>, Box<LabelFilterExpr>),
    /// `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
    Matcher(Matcher),
    /// `name > 5`, `name == 1.5` (also `=` for equality with a number).
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name > 250ms`: value in seconds.
    Duration {
        name: String,
        op: CmpOp,
        seconds: f64,
    },
    /// `name <= 1KiB`: value in bytes.
    Bytes {
        name: String,
        op: CmpOp,
        bytes: f64,
    },
    /// `name = ip("...")` / `name != ip("...")`.
    Ip {
        name: String,
        negated: bool,
        pattern: String,
    },
}

#[derive(Debug, Clone)]
pub enum LabelFormatItem {
    /// `dst=src`: rename (the source label is removed).
    Rename { dst: String, src: String },
    /// `dst="{{ template }}"`
    Template { dst: String, template: String },
}

/// A `drop`/`keep` argument: a bare name, or a matcher that must also hold on the value.
#[derive(Debug, Clone)]
pub enum LabelSelection {
    Name(String),
    Matcher(Matcher),
}

/// Range aggregations over a log range `[d]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    RateCounter,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    SumOverTime,
    AvgOverTime,
    MaxOverTime,
    MinOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    /// The ones that need `| unwrap`.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapConversion {
    /// Plain float parse.
    None,
    /// `duration(x)` / `duration_seconds(x)`: Go duration to seconds.
    Duration,
    /// `bytes(x)`: humanized bytes to bytes.
    Bytes,
}

#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub conversion: UnwrapConversion,
    /// Label filters written after the unwrap (`| unwrap x | __error__=""`).
    pub post_filters: Vec<LabelFilterExpr>,
}

#[derive(Debug, Clone)]
pub struct Grouping {
    /// `without` when true, `by` when false.
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorAggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Unless,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Ge | BinaryOp::Lt | BinaryOp::Le
        )
    }
    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::Or | BinaryOp::And | BinaryOp::Unless)
    }
}

#[derive(Debug, Clone)]
pub struct VectorMatching {
    /// `on` when true, `ignoring` when false.
    pub on: bool,
    pub labels: Vec<String>,
    /// `group_left(...)`/`group_right(...)`.
    pub group: Option<GroupSide>,
}

#[derive(Debug, Clone)]
pub enum GroupSide {
    Left(Vec<String>),
    Right(Vec<String>),
}

#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `count_over_time({..} | .. [5m] offset 1m)`, `quantile_over_time(0.9, ... | unwrap x [5m]) by (a)`.
    Range {
        op: RangeOp,
        log: LogExpr,
        range_ns: i64,
        offset_ns: i64,
        unwrap: Option<Unwrap>,
        /// The quantile of `quantile_over_time`.
        param: Option<f64>,
        /// Only for the unwrapped aggregations that allow it (not sum/rate).
        grouping: Option<Grouping>,
    },
    /// `sum by (a) (...)`, `topk(5, ...)`.
    VectorAgg {
        op: VectorAggOp,
        /// k of topk/bottomk.
        param: Option<f64>,
        grouping: Option<Grouping>,
        inner: Box<MetricExpr>,
    },
    Binary {
        op: BinaryOp,
        return_bool: bool,
        matching: Option<VectorMatching>,
        lhs: Box<MetricExpr>,
        rhs: Box<MetricExpr>,
    },
    /// A number literal (a scalar).
    Literal(f64),
    /// `vector(1)`
    Vector(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`
    LabelReplace {
        inner: Box<MetricExpr>,
        dst: String,
        replacement: String,
        src: String,
        regex: String,
    },
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        })
    }
}
