//! Binary operators: scalar/scalar, vector/scalar and vector/vector with Prometheus' matching
//! (one-to-one, group_left/group_right, set operators) and its errors.

use rustc_hash::{FxHashMap, FxHashSet};
use vigil_model::{Label, Labels};
use vigil_promql_parser::ast::{BinaryExpr, BinaryOp, Cardinality, VectorMatching};

use super::labels::{signature, LabelSetIds};
use super::{EvalResult, Evaluator, SeriesSet, StepSeries, Steps, Val};
use crate::{Point, QueryError};

/// Applies `op` to two floats: the value and whether a comparison keeps the element.
pub(crate) fn apply(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eq => (l, l == r),
        BinaryOp::Ne => (l, l != r),
        BinaryOp::Gt => (l, l > r),
        BinaryOp::Lt => (l, l < r),
        BinaryOp::Ge => (l, l >= r),
        BinaryOp::Le => (l, l <= r),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => (l, true),
    }
}

/// Arithmetic operators drop the metric name; comparisons (without `bool`) and set operators
/// keep it.
fn drops_name(op: BinaryOp) -> bool {
    !op.is_comparison() && !op.is_set()
}

/// Prometheus' `{a="b", c="d"}` notation (the name inside the braces).
pub(crate) fn labels_string(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Points of every series regrouped by step: `(series index, value)` per step.
pub(crate) fn by_step(series: &[StepSeries], steps: Steps) -> Vec<Vec<(u32, f64)>> {
    let mut out = vec![Vec::new(); steps.len()];
    for (i, s) in series.iter().enumerate() {
        for p in &s.points {
            out[steps.index(p.t)].push((i as u32, p.v));
        }
    }
    out
}

impl Evaluator<'_> {
    pub(crate) fn eval_binary(&self, b: &BinaryExpr, steps: Steps) -> EvalResult<Val> {
        let lhs = self.eval(&b.lhs, steps)?;
        let rhs = self.eval(&b.rhs, steps)?;
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
                l.iter()
                    .zip(&r)
                    .map(|(&l, &r)| {
                        let (v, keep) = apply(b.op, l, r);
                        if b.op.is_comparison() {
                            if keep {
                                1.0
                            } else {
                                0.0
                            }
                        } else {
                            v
                        }
                    })
                    .collect(),
            )),
            (Val::Vector(v), Val::Scalar(s)) => {
                // Elementwise: on all cores for many series.
                let run = |part| Ok(vector_scalar(b, part, &s, false, steps));
                Ok(Val::Vector(super::on_all_cores(v, run)?))
            }
            (Val::Scalar(s), Val::Vector(v)) => {
                let run = |part| Ok(vector_scalar(b, part, &s, true, steps));
                Ok(Val::Vector(super::on_all_cores(v, run)?))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let default_matching = VectorMatching {
                    card: if b.op.is_set() {
                        Cardinality::ManyToMany
                    } else {
                        Cardinality::OneToOne
                    },
                    matching_labels: Vec::new(),
                    on: false,
                    include: Vec::new(),
                };
                let matching = b.matching.as_ref().unwrap_or(&default_matching);
                let out = match b.op {
                    BinaryOp::And | BinaryOp::Unless => {
                        self.and_unless(b.op == BinaryOp::And, l, r, matching, steps)?
                    }
                    BinaryOp::Or => self.or(l, r, matching, steps)?,
                    _ => self.vector_vector(b, l, r, matching, steps)?,
                };
                Ok(Val::Vector(out))
            }
            _ => Err(QueryError::Execution(
                "binary expression must contain only scalar and instant vector types".into(),
            )),
        }
    }

    fn and_unless(
        &self,
        and: bool,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        m: &VectorMatching,
        steps: Steps,
    ) -> EvalResult<Vec<StepSeries>> {
        let rhs_sigs: Vec<u64> = rhs
            .iter()
            .map(|s| signature(&s.labels, &m.matching_labels, m.on))
            .collect();
        let rhs_by_step = by_step(&rhs, steps);
        let mut present: Vec<FxHashSet<u64>> = Vec::with_capacity(steps.len());
        for at_step in &rhs_by_step {
            present.push(at_step.iter().map(|&(i, _)| rhs_sigs[i as usize]).collect());
        }
        let mut out = Vec::with_capacity(lhs.len());
        for mut s in lhs {
            let sig = signature(&s.labels, &m.matching_labels, m.on);
            s.points
                .retain(|p| present[steps.index(p.t)].contains(&sig) == and);
            if !s.points.is_empty() {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn or(
        &self,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        m: &VectorMatching,
        steps: Steps,
    ) -> EvalResult<Vec<StepSeries>> {
        let mut present: Vec<FxHashSet<u64>> = vec![FxHashSet::default(); steps.len()];
        for s in &lhs {
            let sig = signature(&s.labels, &m.matching_labels, m.on);
            for p in &s.points {
                present[steps.index(p.t)].insert(sig);
            }
        }
        let mut out = SeriesSet::with_capacity(lhs.len() + rhs.len());
        let lhs_len = lhs.len();
        for (n, mut s) in lhs.into_iter().chain(rhs).enumerate() {
            if n >= lhs_len {
                let sig = signature(&s.labels, &m.matching_labels, m.on);
                s.points
                    .retain(|p| !present[steps.index(p.t)].contains(&sig));
                if s.points.is_empty() {
                    continue;
                }
            }
            out.add(s)?;
        }
        Ok(out.series)
    }

    fn vector_vector(
        &self,
        b: &BinaryExpr,
        lhs: Vec<StepSeries>,
        rhs: Vec<StepSeries>,
        m: &VectorMatching,
        steps: Steps,
    ) -> EvalResult<Vec<StepSeries>> {
        if m.card == Cardinality::ManyToMany {
            return Err(QueryError::Execution(
                "many-to-many only allowed for set operators".into(),
            ));
        }
        // For one-to-many the sides swap: `many` is always matched against `one`.
        let swapped = m.card == Cardinality::OneToMany;
        let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
        let many_sigs: Vec<u64> = many
            .iter()
            .map(|s| signature(&s.labels, &m.matching_labels, m.on))
            .collect();
        let one_sigs: Vec<u64> = one
            .iter()
            .map(|s| signature(&s.labels, &m.matching_labels, m.on))
            .collect();
        if let Some(out) =
            self.fixed_matches(b, &many, &one, (&many_sigs, &one_sigs), m, swapped, steps)?
        {
            return Ok(out);
        }
        let many_by_step = by_step(&many, steps);
        let one_by_step = by_step(&one, steps);

        let mut pair_out: FxHashMap<(u32, u32), usize> = FxHashMap::default();
        let mut ids = LabelSetIds::default();
        let mut out: Vec<StepSeries> = Vec::new();
        let mut last_step_of: Vec<usize> = Vec::new();
        let mut one_at: FxHashMap<u64, (u32, f64)> = FxHashMap::default();
        let mut matched: FxHashMap<u64, FxHashSet<usize>> = FxHashMap::default();
        let drop_name = drops_name(b.op) || b.return_bool;

        for step in 0..steps.len() {
            self.check_deadline()?;
            one_at.clear();
            matched.clear();
            for &(i, v) in &one_by_step[step] {
                let sig = one_sigs[i as usize];
                if let Some(&(dup, _)) = one_at.get(&sig) {
                    let side = if swapped { "left" } else { "right" };
                    let group = match_labels(&one[i as usize].labels, m);
                    return Err(QueryError::Execution(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        labels_string(&group),
                        labels_string(&one[dup as usize].labels),
                        labels_string(&one[i as usize].labels),
                    )));
                }
                one_at.insert(sig, (i, v));
            }
            let t = steps.time(step);
            for &(i, v) in &many_by_step[step] {
                let sig = many_sigs[i as usize];
                let Some(&(j, w)) = one_at.get(&sig) else {
                    continue;
                };
                if m.card == Cardinality::OneToOne {
                    // Checked before comparisons filter: a duplicate is an error either way.
                    let seen = matched.entry(sig).or_default();
                    if !seen.is_empty() {
                        return Err(QueryError::Execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                        ));
                    }
                    seen.insert(usize::MAX);
                }
                let (l, r) = if swapped { (w, v) } else { (v, w) };
                let (mut value, keep) = apply(b.op, l, r);
                if b.return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                let out_id = match pair_out.get(&(i, j)) {
                    Some(&id) => id,
                    None => {
                        let labels =
                            result_labels(&many[i as usize].labels, &one[j as usize].labels, m);
                        let (id, new) = ids.intern(labels.clone());
                        if new {
                            out.push(StepSeries {
                                labels,
                                drop_name: drop_name || many[i as usize].drop_name,
                                points: Vec::new(),
                            });
                            last_step_of.push(usize::MAX);
                        }
                        pair_out.insert((i, j), id);
                        id
                    }
                };
                if m.card != Cardinality::OneToOne {
                    let seen = matched.entry(sig).or_default();
                    if !seen.insert(out_id) {
                        return Err(QueryError::Execution(
                            "multiple matches for labels: grouping labels must ensure unique matches"
                                .into(),
                        ));
                    }
                }
                if last_step_of[out_id] == step {
                    return Err(QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                last_step_of[out_id] = step;
                out[out_id].points.push(Point { t, v: value });
            }
        }
        Ok(out)
    }
}

impl Evaluator<'_> {
    /// [`Evaluator::vector_vector`] when each series of `many` matches the same series of
    /// `one` at every step and no error can arise: the signatures of `one` are distinct (and
    /// those of `many` too, one-to-one), and no two matched pairs give the same output labels.
    /// Each pair's points are then merged once, instead of hashing every series at every step.
    /// `None` when those conditions fail; the general path then decides (and reports errors).
    #[allow(clippy::too_many_arguments)]
    fn fixed_matches(
        &self,
        b: &BinaryExpr,
        many: &[StepSeries],
        one: &[StepSeries],
        (many_sigs, one_sigs): (&[u64], &[u64]),
        m: &VectorMatching,
        swapped: bool,
        steps: Steps,
    ) -> EvalResult<Option<Vec<StepSeries>>> {
        let mut one_of: FxHashMap<u64, u32> = FxHashMap::default();
        one_of.reserve(one_sigs.len());
        for (j, &sig) in one_sigs.iter().enumerate() {
            if one_of.insert(sig, j as u32).is_some() {
                return Ok(None);
            }
        }
        if m.card == Cardinality::OneToOne {
            let mut seen: FxHashSet<u64> = FxHashSet::default();
            if !many_sigs.iter().all(|&sig| seen.insert(sig)) {
                return Ok(None);
            }
        }
        let drop_name = drops_name(b.op) || b.return_bool;
        let mut ids = LabelSetIds::default();
        // (step of the first point, index in `many`, series): the general path's order.
        let mut out: Vec<(usize, usize, StepSeries)> = Vec::new();
        for (i, series) in many.iter().enumerate() {
            if i % 1024 == 0 {
                self.check_deadline()?;
            }
            let Some(&j) = one_of.get(&many_sigs[i]) else {
                continue;
            };
            let other = &one[j as usize];
            let mut points = Vec::new();
            let mut k = 0;
            for p in &series.points {
                while other.points.get(k).is_some_and(|q| q.t < p.t) {
                    k += 1;
                }
                let Some(q) = other.points.get(k) else {
                    break;
                };
                if q.t != p.t {
                    continue;
                }
                let (l, r) = if swapped { (q.v, p.v) } else { (p.v, q.v) };
                let (mut value, keep) = apply(b.op, l, r);
                if b.return_bool {
                    value = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                points.push(Point { t: p.t, v: value });
            }
            let Some(first) = points.first() else {
                continue;
            };
            let first_step = steps.index(first.t);
            let labels = result_labels(&series.labels, &other.labels, m);
            if !ids.intern(labels.clone()).1 {
                return Ok(None);
            }
            out.push((
                first_step,
                i,
                StepSeries {
                    labels,
                    drop_name: drop_name || series.drop_name,
                    points,
                },
            ));
        }
        out.sort_by_key(|&(first_step, i, _)| (first_step, i));
        Ok(Some(out.into_iter().map(|(_, _, s)| s).collect()))
    }
}

fn vector_scalar(
    b: &BinaryExpr,
    mut series: Vec<StepSeries>,
    scalar: &[f64],
    scalar_on_left: bool,
    steps: Steps,
) -> Vec<StepSeries> {
    let drop_name = drops_name(b.op) || b.return_bool;
    for s in &mut series {
        s.points.retain_mut(|p| {
            let sv = scalar[steps.index(p.t)];
            let (l, r) = if scalar_on_left { (sv, p.v) } else { (p.v, sv) };
            let (mut value, keep) = apply(b.op, l, r);
            if b.op.is_comparison() {
                // A comparison keeps the vector's value, whichever side it is on.
                value = p.v;
            }
            if b.return_bool {
                p.v = if keep { 1.0 } else { 0.0 };
                return true;
            }
            p.v = value;
            keep
        });
        s.drop_name |= drop_name;
    }
    series.retain(|s| !s.points.is_empty());
    series
}

/// The labels a match group is identified by (for error messages).
fn match_labels(labels: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        super::labels::keep_only(labels, &m.matching_labels)
    } else {
        super::labels::drop_names_and_metric(labels, &m.matching_labels)
    }
}

/// The result's labels: the `many` side's, restricted by `on`/`ignoring` for one-to-one,
/// plus the `group_x(...)` labels copied from the `one` side.
fn result_labels(many: &Labels, one: &Labels, m: &VectorMatching) -> Labels {
    let mut pairs: Vec<Label> = if m.card == Cardinality::OneToOne {
        if m.on {
            many.iter()
                .filter(|l| m.matching_labels.contains(&l.name))
                .cloned()
                .collect()
        } else {
            many.iter()
                .filter(|l| !m.matching_labels.contains(&l.name))
                .cloned()
                .collect()
        }
    } else {
        many.iter().cloned().collect()
    };
    for name in &m.include {
        pairs.retain(|l| l.name != *name);
        if let Some(v) = one.get(name) {
            if !v.is_empty() {
                pairs.push(Label::new(name.clone(), v));
            }
        }
    }
    Labels::from_unsorted(pairs)
}
