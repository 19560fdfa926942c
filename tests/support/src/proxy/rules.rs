//! Fault rules, the request counters they depend on, and the request log.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::classify::Call;
use super::errors::InjectedError;

/// What the proxy does to a request that a rule selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Returns this error without forwarding the request.
    Error(InjectedError),
    /// Returns the service's throttling error ([`InjectedError::throttling`]) without
    /// forwarding the request.
    Throttle,
    /// Forwards the request to moto, waits for moto's full response, then closes the
    /// connection without responding. moto applies the mutation, and the client never
    /// receives the result.
    DropAfterForward,
    /// Neither forwards nor responds. The connection stays open until the client gives up or
    /// the proxy stops.
    Stall,
    /// Forwards the request to moto, then holds the connection open without responding. moto
    /// applies the mutation, and the client waits, so a test can kill it at exactly that point.
    StallAfterForward,
}

/// What happened to one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to moto, and moto's response returned with this HTTP status.
    Forwarded { status: u16 },
    /// Returned an injected error without forwarding.
    Failed { status: u16, code: String },
    /// Forwarded to moto, which returned this HTTP status, then the connection was closed
    /// without a response.
    Dropped { upstream_status: u16 },
    /// Held open without a response and without forwarding.
    Stalled,
    /// Forwarded to moto, which returned this HTTP status, then held open without a response.
    StalledAfterForward { upstream_status: u16 },
    /// Forwarding to moto failed, and the proxy returned HTTP 502.
    UpstreamFailed { message: String },
}

/// One request that the proxy received, in the order the proxy finished with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The SigV4 signing name: `ec2`, `route53`, `sts`, or `unknown` for an unsigned request
    /// of no known API.
    pub service: String,
    /// The API operation, such as `CreateVpcEndpoint` or `ChangeResourceRecordSets`.
    pub operation: String,
    pub mutating: bool,
    /// The 1-based position among mutating requests since the start or the last
    /// `reset_counts`, for mutating requests.
    pub mutating_index: Option<u32>,
    pub outcome: Outcome,
    /// When the proxy read the request, before any delay.
    pub received: Instant,
    /// When the proxy had the outcome: the response from moto, the injected error or the
    /// start of a stall.
    pub finished: Instant,
}

/// A fault for the request that is the `n`th mutating one.
#[derive(Debug)]
struct NthMutatingRule {
    n: u32,
    fault: Fault,
}

/// A fault for the next `remaining` requests of an operation.
#[derive(Debug)]
struct OperationRule {
    operation: String,
    remaining: u32,
    fault: Fault,
}

/// Throttling of `numerator` in every `denominator` requests.
#[derive(Debug)]
struct ThrottleRule {
    numerator: u64,
    denominator: u64,
    /// Requests seen since the rule was set or the counts were reset.
    sequence: u64,
}

/// What to do with one request: wait `delay`, then apply `fault` or forward.
#[derive(Debug)]
pub(crate) struct Decision {
    pub delay: Duration,
    pub fault: Option<Fault>,
    pub mutating_index: Option<u32>,
}

/// The rules, counters and log that all connections of a proxy share behind one mutex.
#[derive(Debug, Default)]
pub(crate) struct State {
    nth_mutating: Vec<NthMutatingRule>,
    operations: Vec<OperationRule>,
    throttle: Option<ThrottleRule>,
    delay: Duration,
    mutating_count: u32,
    log: Vec<RequestRecord>,
    request_ids: u64,
}

impl State {
    pub fn add_nth_mutating(&mut self, n: u32, fault: Fault) {
        assert!(
            n >= 1,
            "mutating requests are counted from 1, so n must be at least 1"
        );
        self.nth_mutating.push(NthMutatingRule { n, fault });
    }

    pub fn add_operation(&mut self, operation: &str, times: u32, fault: Fault) {
        if times > 0 {
            self.operations.push(OperationRule {
                operation: operation.to_owned(),
                remaining: times,
                fault,
            });
        }
    }

    pub fn set_throttle(&mut self, numerator: u32, denominator: u32) {
        assert!(
            denominator > 0 && numerator <= denominator,
            "a throttled fraction needs 0 <= numerator <= denominator and denominator > 0, \
             not {numerator}/{denominator}"
        );
        self.throttle = (numerator > 0).then_some(ThrottleRule {
            numerator: u64::from(numerator),
            denominator: u64::from(denominator),
            sequence: 0,
        });
    }

    pub fn set_delay(&mut self, delay: Duration) {
        self.delay = delay;
    }

    pub fn clear_faults(&mut self) {
        self.nth_mutating.clear();
        self.operations.clear();
        self.throttle = None;
        self.delay = Duration::ZERO;
    }

    pub fn reset_counts(&mut self) {
        self.mutating_count = 0;
        self.log.clear();
        if let Some(throttle) = &mut self.throttle {
            throttle.sequence = 0;
        }
    }

    pub fn mutating_count(&self) -> u32 {
        self.mutating_count
    }

    pub fn log(&self) -> &[RequestRecord] {
        &self.log
    }

    pub fn counts(&self) -> BTreeMap<(String, String), u32> {
        let mut counts = BTreeMap::new();
        for record in &self.log {
            let key = (record.service.clone(), record.operation.clone());
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    pub fn record(&mut self, call: Call, mutating_index: Option<u32>, outcome: Outcome) {
        self.log.push(RequestRecord {
            service: call.service,
            operation: call.operation,
            mutating: call.mutating,
            mutating_index,
            outcome,
            received: call.received,
            finished: Instant::now(),
        });
    }

    /// Returns a request id of the AWS format, unique for this proxy.
    pub fn next_request_id(&mut self) -> String {
        self.request_ids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.request_ids)
    }

    /// Counts `call` and picks at most one fault for it.
    ///
    /// A rule for the Nth mutating request comes first, then the first rule for the
    /// operation that has uses left, then the throttled fraction. Only the rule that applies
    /// is used up, so a request that an Nth-mutating rule fails leaves the operation rules as
    /// they were.
    pub fn decide(&mut self, call: &Call) -> Decision {
        let mutating_index = call.mutating.then(|| {
            self.mutating_count += 1;
            self.mutating_count
        });
        let throttled = self
            .throttle
            .as_mut()
            .is_some_and(ThrottleRule::select_next);
        let fault = self
            .take_nth_mutating(mutating_index)
            .or_else(|| self.take_operation(&call.operation))
            .or_else(|| throttled.then_some(Fault::Throttle));
        Decision {
            delay: self.delay,
            fault,
            mutating_index,
        }
    }

    fn take_nth_mutating(&mut self, mutating_index: Option<u32>) -> Option<Fault> {
        let index = mutating_index?;
        let position = self.nth_mutating.iter().position(|rule| rule.n == index)?;
        Some(self.nth_mutating.remove(position).fault)
    }

    fn take_operation(&mut self, operation: &str) -> Option<Fault> {
        let position = self
            .operations
            .iter()
            .position(|rule| rule.operation == operation)?;
        let rule = &mut self.operations[position];
        rule.remaining -= 1;
        let fault = rule.fault.clone();
        if rule.remaining == 0 {
            self.operations.remove(position);
        }
        Some(fault)
    }
}

impl ThrottleRule {
    /// Advances the sequence and returns whether the new request is throttled.
    ///
    /// Request k (from 1) is throttled when `k * numerator / denominator` passes an integer,
    /// which spreads the throttled requests evenly: 1/3 throttles requests 3, 6, 9, and 2/3
    /// throttles 2, 3, 5, 6.
    fn select_next(&mut self) -> bool {
        self.sequence += 1;
        let before = (self.sequence - 1) * self.numerator / self.denominator;
        let after = self.sequence * self.numerator / self.denominator;
        after > before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &str, mutating: bool) -> Call {
        Call {
            service: "ec2".to_owned(),
            operation: operation.to_owned(),
            mutating,
            received: Instant::now(),
        }
    }

    fn error(code: &str) -> Fault {
        Fault::Error(InjectedError::new(400, code, "injected"))
    }

    #[test]
    fn nth_mutating_skips_reads() {
        let mut state = State::default();
        state.add_nth_mutating(2, error("Second"));
        assert_eq!(state.decide(&call("CreateVpc", true)).fault, None);
        assert_eq!(state.decide(&call("DescribeVpcs", false)).fault, None);
        let second = state.decide(&call("CreateTags", true));
        assert_eq!(second.fault, Some(error("Second")));
        assert_eq!(second.mutating_index, Some(2));
        assert_eq!(state.decide(&call("CreateTags", true)).fault, None);
    }

    #[test]
    fn nth_mutating_restarts_after_reset() {
        let mut state = State::default();
        state.decide(&call("CreateVpc", true));
        state.reset_counts();
        state.add_nth_mutating(1, Fault::DropAfterForward);
        let first = state.decide(&call("CreateVpc", true));
        assert_eq!(first.fault, Some(Fault::DropAfterForward));
        assert_eq!(first.mutating_index, Some(1));
    }

    #[test]
    fn operation_rule_runs_out() {
        let mut state = State::default();
        state.add_operation(
            "ChangeResourceRecordSets",
            2,
            error("PriorRequestNotComplete"),
        );
        let change = call("ChangeResourceRecordSets", true);
        assert!(state.decide(&change).fault.is_some());
        assert!(state.decide(&call("GetChange", false)).fault.is_none());
        assert!(state.decide(&change).fault.is_some());
        assert!(state.decide(&change).fault.is_none());
    }

    #[test]
    fn nth_rule_leaves_operation_rule() {
        let mut state = State::default();
        state.add_nth_mutating(1, error("Nth"));
        state.add_operation("CreateVpc", 1, error("Operation"));
        assert_eq!(
            state.decide(&call("CreateVpc", true)).fault,
            Some(error("Nth"))
        );
        let second = state.decide(&call("CreateVpc", true));
        assert_eq!(second.fault, Some(error("Operation")));
    }

    #[test]
    fn throttle_one_third() {
        let mut state = State::default();
        state.set_throttle(1, 3);
        let throttled: Vec<bool> = (0..9)
            .map(|_| state.decide(&call("DescribeVpcs", false)).fault == Some(Fault::Throttle))
            .collect();
        let expected = [false, false, true, false, false, true, false, false, true];
        assert_eq!(throttled, expected);
    }

    #[test]
    fn throttle_two_thirds() {
        let mut state = State::default();
        state.set_throttle(2, 3);
        let throttled: Vec<bool> = (0..6)
            .map(|_| state.decide(&call("DescribeVpcs", false)).fault == Some(Fault::Throttle))
            .collect();
        assert_eq!(throttled, [false, true, true, false, true, true]);
    }

    #[test]
    fn counts_group_by_operation() {
        let mut state = State::default();
        for operation in ["DescribeVpcs", "DescribeVpcs", "CreateVpc"] {
            let call = call(operation, operation.starts_with("Create"));
            state.record(call, None, Outcome::Forwarded { status: 200 });
        }
        let counts = state.counts();
        assert_eq!(counts[&("ec2".to_owned(), "DescribeVpcs".to_owned())], 2);
        assert_eq!(counts[&("ec2".to_owned(), "CreateVpc".to_owned())], 1);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn nth_zero_is_rejected() {
        State::default().add_nth_mutating(0, Fault::Stall);
    }
}
