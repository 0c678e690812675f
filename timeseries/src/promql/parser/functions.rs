//! The function table: every function of current upstream PromQL with its argument
//! types, how many optional arguments it takes, its return type and whether it is
//! experimental (`promql-experimental-functions`).

use super::ast::ValueType;

/// A PromQL function's signature.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Function {
    /// The name.
    pub name: &'static str,
    /// The argument types. With `variadic != 0` the last one may be left out, and
    /// (for `variadic > 0` up to that many times, for `variadic < 0` any number of
    /// times) repeated.
    pub arg_types: &'static [ValueType],
    /// `0`: exactly `arg_types.len()` arguments. `n > 0`: from `arg_types.len() - 1`
    /// to `arg_types.len() - 1 + n`. `-1`: at least `arg_types.len() - 1`.
    pub variadic: i32,
    /// The result type.
    pub return_type: ValueType,
    /// Whether the function needs `promql-experimental-functions`.
    pub experimental: bool,
}

impl Function {
    /// The fewest arguments a call may have.
    pub fn min_args(&self) -> usize {
        if self.variadic == 0 {
            self.arg_types.len()
        } else {
            self.arg_types.len().saturating_sub(1)
        }
    }

    /// The most arguments a call may have (`None`: no limit).
    pub fn max_args(&self) -> Option<usize> {
        match self.variadic {
            0 => Some(self.arg_types.len()),
            n if n > 0 => Some(self.min_args() + n as usize),
            _ => None,
        }
    }

    /// The type argument `i` must have (`None` past the last allowed argument).
    pub fn arg_type(&self, i: usize) -> Option<ValueType> {
        if let Some(t) = self.arg_types.get(i) {
            return Some(*t);
        }
        if self.variadic == 0 {
            return None;
        }
        self.arg_types.last().copied()
    }
}

use ValueType::{Matrix as M, Scalar as S, String as Str, Vector as V};

macro_rules! functions {
    ($($name:literal: [$($arg:ident),*] $variadic:literal -> $ret:ident $(, $exp:ident)?;)*) => {
        /// Every function, sorted by name.
        pub static FUNCTIONS: &[Function] = &[
            $(Function {
                name: $name,
                arg_types: &[$($arg),*],
                variadic: $variadic,
                return_type: $ret,
                experimental: functions!(@exp $($exp)?),
            },)*
        ];
    };
    (@exp experimental) => { true };
    (@exp) => { false };
}

functions! {
    "abs": [V] 0 -> V;
    "absent": [V] 0 -> V;
    "absent_over_time": [M] 0 -> V;
    "acos": [V] 0 -> V;
    "acosh": [V] 0 -> V;
    "asin": [V] 0 -> V;
    "asinh": [V] 0 -> V;
    "atan": [V] 0 -> V;
    "atanh": [V] 0 -> V;
    "avg_over_time": [M] 0 -> V;
    "ceil": [V] 0 -> V;
    "changes": [M] 0 -> V;
    "clamp": [V, S, S] 0 -> V;
    "clamp_max": [V, S] 0 -> V;
    "clamp_min": [V, S] 0 -> V;
    "cos": [V] 0 -> V;
    "cosh": [V] 0 -> V;
    "count_over_time": [M] 0 -> V;
    "day_of_month": [V] 1 -> V;
    "day_of_week": [V] 1 -> V;
    "day_of_year": [V] 1 -> V;
    "days_in_month": [V] 1 -> V;
    "deg": [V] 0 -> V;
    "delta": [M] 0 -> V;
    "deriv": [M] 0 -> V;
    "double_exponential_smoothing": [M, S, S] 0 -> V, experimental;
    "end": [] 0 -> S, experimental;
    "exp": [V] 0 -> V;
    "first_over_time": [M] 0 -> V, experimental;
    "floor": [V] 0 -> V;
    "histogram_avg": [V] 0 -> V;
    "histogram_count": [V] 0 -> V;
    "histogram_fraction": [S, S, V] 0 -> V;
    "histogram_quantile": [S, V] 0 -> V;
    "histogram_quantiles": [V, Str, S, S] 9 -> V, experimental;
    "histogram_stddev": [V] 0 -> V;
    "histogram_stdvar": [V] 0 -> V;
    "histogram_sum": [V] 0 -> V;
    "hour": [V] 1 -> V;
    "idelta": [M] 0 -> V;
    "increase": [M] 0 -> V;
    "info": [V, V] 1 -> V, experimental;
    "integral": [M, S] 1 -> V, experimental;
    "irate": [M] 0 -> V;
    "label_join": [V, Str, Str, Str] -1 -> V;
    "label_replace": [V, Str, Str, Str, Str] 0 -> V;
    "last_over_time": [M] 0 -> V;
    "ln": [V] 0 -> V;
    "log10": [V] 0 -> V;
    "log2": [V] 0 -> V;
    "mad_over_time": [M] 0 -> V, experimental;
    "max_of": [S, S] 0 -> S, experimental;
    "max_over_time": [M] 0 -> V;
    "min_of": [S, S] 0 -> S, experimental;
    "min_over_time": [M] 0 -> V;
    "minute": [V] 1 -> V;
    "month": [V] 1 -> V;
    "pi": [] 0 -> S;
    "predict_linear": [M, S] 0 -> V;
    "present_over_time": [M] 0 -> V;
    "quantile_over_time": [S, M] 0 -> V;
    "rad": [V] 0 -> V;
    "range": [] 0 -> S, experimental;
    "rate": [M] 0 -> V;
    "resets": [M] 0 -> V;
    "round": [V, S] 1 -> V;
    "scalar": [V] 0 -> S;
    "sgn": [V] 0 -> V;
    "sin": [V] 0 -> V;
    "sinh": [V] 0 -> V;
    "sort": [V] 0 -> V;
    "sort_by_label": [V, Str] -1 -> V, experimental;
    "sort_by_label_desc": [V, Str] -1 -> V, experimental;
    "sort_desc": [V] 0 -> V;
    "sqrt": [V] 0 -> V;
    "start": [] 0 -> S, experimental;
    "start_timestamp": [V] 0 -> V, experimental;
    "stddev_over_time": [M] 0 -> V;
    "stdvar_over_time": [M] 0 -> V;
    "step": [] 0 -> S, experimental;
    "sum_over_time": [M] 0 -> V;
    "tan": [V] 0 -> V;
    "tanh": [V] 0 -> V;
    "time": [] 0 -> S;
    "timestamp": [V] 0 -> V;
    "ts_of_first_over_time": [M] 0 -> V, experimental;
    "ts_of_last_over_time": [M] 0 -> V, experimental;
    "ts_of_max_over_time": [M] 0 -> V, experimental;
    "ts_of_min_over_time": [M] 0 -> V, experimental;
    "vector": [S] 0 -> V;
    "year": [V] 1 -> V;
}

/// The function with this name (case-sensitive, as upstream).
pub fn get_function(name: &str) -> Option<&'static Function> {
    FUNCTIONS
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .map(|i| &FUNCTIONS[i])
}

/// The functions the `anchored` range modifier may be used with.
pub const ANCHORED_FUNCTIONS: &[&str] = &["changes", "delta", "increase", "rate", "resets"];

/// The functions the `smoothed` range modifier may be used with.
pub const SMOOTHED_FUNCTIONS: &[&str] = &["delta", "increase", "rate"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_keep_the_table_sorted_for_lookup() {
        for w in FUNCTIONS.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for f in FUNCTIONS {
            assert_eq!(get_function(f.name).map(|g| g.name), Some(f.name));
        }
        assert!(get_function("nope").is_none());
        assert!(get_function("Rate").is_none());
    }

    #[test]
    fn should_count_optional_and_variadic_arguments() {
        let round = get_function("round").expect("round");
        assert_eq!((round.min_args(), round.max_args()), (1, Some(2)));
        let join = get_function("label_join").expect("label_join");
        assert_eq!((join.min_args(), join.max_args()), (3, None));
        assert_eq!(join.arg_type(7), Some(ValueType::String));
        let rate = get_function("rate").expect("rate");
        assert_eq!((rate.min_args(), rate.max_args()), (1, Some(1)));
        assert_eq!(rate.arg_type(1), None);
        let q = get_function("histogram_quantiles").expect("histogram_quantiles");
        assert_eq!((q.min_args(), q.max_args()), (3, Some(12)));
    }
}
