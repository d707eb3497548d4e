//! The PromQL syntax tree. Durations and timestamps are milliseconds.

use vigil_model::Matcher;

/// The type an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    Scalar,
    String,
    Vector,
    Matrix,
}

impl ValueType {
    /// The name Prometheus uses in type errors and in the API's `resultType`.
    pub fn api_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
        }
    }

    /// The name Prometheus uses in parse errors ("instant vector", "range vector").
    pub fn doc_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::String => "string",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    NumberLiteral(f64),
    StringLiteral(String),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(SubqueryExpr),
    Paren(Box<Expr>),
    Unary(UnaryExpr),
    Binary(BinaryExpr),
    Aggregate(AggregateExpr),
    Call(Call),
}

/// `@` modifier: a fixed time, or the query's start or end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtModifier {
    Timestamp(i64),
    Start,
    End,
}

#[derive(Debug, Clone)]
pub struct VectorSelector {
    /// The metric name when written before the braces (also present as a `__name__` matcher).
    pub name: Option<String>,
    /// All matchers, including the `__name__` one for a leading name.
    pub matchers: Vec<Matcher>,
    /// `offset` in milliseconds; negative for `offset -5m`.
    pub offset_ms: i64,
    pub at: Option<AtModifier>,
}

impl PartialEq for VectorSelector {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.offset_ms == other.offset_ms
            && self.at == other.at
            && self.matchers.len() == other.matchers.len()
            && self
                .matchers
                .iter()
                .zip(&other.matchers)
                .all(|(a, b)| a.name == b.name && a.op == b.op && a.value == b.value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSelector {
    pub selector: VectorSelector,
    pub range_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubqueryExpr {
    pub expr: Box<Expr>,
    pub range_ms: i64,
    /// `None` when the step is omitted (`[5m:]`): the engine's default evaluation interval.
    pub step_ms: Option<i64>,
    pub offset_ms: i64,
    pub at: Option<AtModifier>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Neg,
    Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnaryExpr {
    pub op: UnaryOp,
    pub expr: Box<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Gt | BinaryOp::Lt | BinaryOp::Ge | BinaryOp::Le
        )
    }

    pub fn is_set(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }

    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Lt => "<",
            BinaryOp::Ge => ">=",
            BinaryOp::Le => "<=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    ManyToOne,
    OneToMany,
    ManyToMany,
}

/// How the two sides of a vector/vector operation are matched.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// Labels of `on(...)` or `ignoring(...)`.
    pub matching_labels: Vec<String>,
    /// `true` for `on`, `false` for `ignoring` (and for no clause at all).
    pub on: bool,
    /// Labels of `group_left(...)` / `group_right(...)`.
    pub include: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    pub op: BinaryOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// `bool` modifier on a comparison.
    pub return_bool: bool,
    /// Present when both sides are vectors (set operators always get many-to-many).
    pub matching: Option<VectorMatching>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    TopK,
    BottomK,
    CountValues,
    Quantile,
    LimitK,
    LimitRatio,
}

impl AggregateOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Count => "count",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::TopK => "topk",
            AggregateOp::BottomK => "bottomk",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Quantile => "quantile",
            AggregateOp::LimitK => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    /// Whether the aggregation takes a parameter before the vector (`topk(3, ...)`).
    pub fn takes_param(self) -> bool {
        matches!(
            self,
            AggregateOp::TopK
                | AggregateOp::BottomK
                | AggregateOp::CountValues
                | AggregateOp::Quantile
                | AggregateOp::LimitK
                | AggregateOp::LimitRatio
        )
    }
}

#[derive(Debug, Clone)]
pub struct AggregateExpr {
    pub op: AggregateOp,
    pub expr: Box<Expr>,
    pub param: Option<Box<Expr>>,
    /// Labels of `by(...)` or `without(...)`.
    pub grouping: Vec<String>,
    pub without: bool,
    /// Start of the parameter, for annotations about it.
    pub param_pos: Option<Pos>,
}

impl PartialEq for AggregateExpr {
    /// Positions are not part of an expression's meaning.
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op
            && self.expr == other.expr
            && self.param == other.param
            && self.grouping == other.grouping
            && self.without == other.without
    }
}

/// Where a node starts in the query text, as Prometheus' annotations cite it (`1:25`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone)]
pub struct Call {
    pub func: &'static crate::functions::Function,
    pub args: Vec<Expr>,
    /// Start of the call (the function name).
    pub pos: Pos,
    /// Start of each argument.
    pub arg_pos: Vec<Pos>,
}

impl PartialEq for Call {
    /// Positions are not part of an expression's meaning.
    fn eq(&self, other: &Self) -> bool {
        self.func == other.func && self.args == other.args
    }
}

impl Expr {
    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::NumberLiteral(_) => ValueType::Scalar,
            Expr::StringLiteral(_) => ValueType::String,
            Expr::VectorSelector(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Paren(e) => e.value_type(),
            Expr::Unary(u) => u.expr.value_type(),
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Aggregate(_) => ValueType::Vector,
            Expr::Call(c) => c.func.return_type,
        }
    }
}
