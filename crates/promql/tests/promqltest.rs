//! Prometheus' own PromQL test scripts (`testdata/promqltest/*.test`, Apache-2.0, vendored
//! verbatim) run against the engine over the real in-memory head: one test per script.
//!
//! Cases listed in `testdata/promqltest-expected-failures.txt` (`file.test:line  reason`) may
//! fail; a listed case that passes fails the test so the list stays honest. Native-histogram
//! cases are skipped and counted. Informational scripts (experimental features) report their
//! counts and never fail. See `promqltest/runner.rs` for the environment variables
//! (`PROMQLTEST_FILE`, `PROMQLTEST_LINE`, `PROMQLTEST_WRITE_FAILURES`).

#[path = "promqltest/compare.rs"]
mod compare;
#[path = "promqltest/runner.rs"]
mod runner;
#[path = "promqltest/script.rs"]
mod script;

macro_rules! promqltest_files {
    ($($name:ident => $file:literal, $required:literal;)*) => {
        $(
            #[test]
            fn $name() {
                runner::run_file($file, $required);
            }
        )*

        /// Every vendored script has a test above.
        #[test]
        fn every_script_has_a_test() {
            let known = [$($file),*];
            let dir = runner::testdata_dir().join("promqltest");
            let mut missing = Vec::new();
            for entry in std::fs::read_dir(&dir).expect("testdata/promqltest") {
                let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
                if name.ends_with(".test") && !known.contains(&name.as_str()) {
                    missing.push(name);
                }
            }
            assert!(missing.is_empty(), "scripts without a test: {missing:?}");
        }
    };
}

promqltest_files! {
    // Required: must pass except for listed expected failures.
    aggregators => "aggregators.test", true;
    at_modifier => "at_modifier.test", true;
    collision => "collision.test", true;
    functions => "functions.test", true;
    histograms => "histograms.test", true;
    literals => "literals.test", true;
    name_label_dropping => "name_label_dropping.test", true;
    operators => "operators.test", true;
    range_queries => "range_queries.test", true;
    selectors => "selectors.test", true;
    staleness => "staleness.test", true;
    subquery => "subquery.test", true;
    trig_functions => "trig_functions.test", true;
    // Informational: experimental or native-histogram features; counts only.
    native_histograms => "native_histograms.test", false;
    duration_expression => "duration_expression.test", false;
    extended_vectors => "extended_vectors.test", false;
    fill_modifier => "fill-modifier.test", false;
    info => "info.test", false;
    limit => "limit.test", false;
    start_timestamps => "start_timestamps.test", false;
    type_and_unit => "type_and_unit.test", false;
}
