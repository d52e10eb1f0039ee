//! Property test: the feature evaluation core (incremental per-key state, window arithmetic,
//! aggregates) against a naive evaluator written straight from spec section 2, on random event
//! streams ingested in random arrival order, at random times T, inclusive and strict.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field};
use asofdb::catalog::{ColumnDef, TableDef};
use asofdb::feature::aggregate::{AggKind, Fraction};
use asofdb::feature::window::span;
use asofdb::feature::window::{AsOf, Window};
use asofdb::feature::{CompiledFeature, FeatureDef, FeatureState, ValueDef};
use asofdb::sql::types::ColumnType;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use proptest::prelude::*;

const MIN: i64 = 60_000_000;

#[derive(Debug, Clone)]
struct Event {
    key: i64,
    t: i64,
    amt: Option<f64>,
    status: &'static str,
    /// Ingest time: when the row became known (before or long after its event time).
    known: i64,
}

fn table() -> Arc<TableDef> {
    let col = |name: &str, ty| ColumnDef::new(name, ty, false);
    Arc::new(TableDef {
        id: 1,
        name: "tx".into(),
        columns: vec![
            col("card", ColumnType::BigInt),
            col("amt", ColumnType::Double),
            col("status", ColumnType::Text),
            ColumnDef::new("ts", ColumnType::Timestamp, true),
            col("known", ColumnType::Timestamp),
        ],
        event_time: Some(3),
        hot_retention_micros: 86_400_000_000,
        retention_micros: None,
        ingest_time: Some(4),
        temporary: false,
        owner: "asofdb".into(),
    })
}

fn value(name: &str, kind: AggKind, arg: Option<&str>, filter: Option<&str>) -> ValueDef {
    ValueDef { name: name.into(), kind, arg: arg.map(Into::into), filter: filter.map(Into::into) }
}

/// The aggregates of the full feature that a distinct-only one keeps (its live state also
/// drops repeated values).
const DISTINCT_ONLY: [usize; 2] = [8, 13];

fn feature(window: Window, tile_minutes: i64, tile_min_events: usize, distinct_only: bool) -> CompiledFeature {
    let mut def = FeatureDef {
        name: "f".into(),
        table: "tx".into(),
        keys: vec!["card".into()],
        values: vec![
            value("n", AggKind::CountStar, None, None),
            value("c", AggKind::Count, Some("amt"), None),
            value("s", AggKind::Sum, Some("amt"), None),
            value("mx", AggKind::Max, Some("amt"), None),
            value("mn", AggKind::Min, Some("amt"), None),
            value("first", AggKind::FirstValue, Some("amt"), None),
            value("last", AggKind::LastValue, Some("amt"), None),
            value("ok", AggKind::CountStar, None, Some("status = 'ok'")),
            value("d", AggKind::CountDistinct, Some("status"), None),
            value("avg", AggKind::Avg, Some("amt"), None),
            value("var", AggKind::VarSamp, Some("amt"), None),
            value("min_status", AggKind::Min, Some("status"), None),
            value("last_status", AggKind::LastValue, Some("status"), None),
            value("d_amt", AggKind::CountDistinct, Some("amt * 2"), None),
            value("last3", AggKind::LastK(3), Some("amt"), None),
            value("max2", AggKind::MaxK(2), Some("amt"), None),
            value("min3_status", AggKind::MinK(3), Some("status"), None),
            value("last2_status", AggKind::LastK(2), Some("status"), None),
            value("p30", AggKind::ApproxPercentile(Fraction::new(0.3).unwrap()), Some("amt"), None),
            value("p100", AggKind::ApproxPercentile(Fraction::new(1.0).unwrap()), Some("amt"), None),
            value("dsum", AggKind::DecayedSum(17 * MIN), Some("amt"), None),
            value("dcount", AggKind::DecayedCount(5 * MIN), None, Some("status = 'ok'")),
        ],
        filter: Some("status <> 'void'".into()),
        window,
        tile: Some(tile_minutes * MIN),
        sql: String::new(),
        owner: "asofdb".into(),
    };
    if distinct_only {
        def.values = DISTINCT_ONLY.iter().map(|i| def.values[*i].clone()).collect();
    }
    let mut compiled = CompiledFeature::compile(def, table(), &SessionContext::new()).unwrap();
    compiled.tile_min_events = tile_min_events;
    compiled
}

fn batch(events: &[Event]) -> RecordBatch {
    RecordBatch::try_new(
        table().schema(),
        vec![
            Arc::new(Int64Array::from(events.iter().map(|e| e.key).collect::<Vec<_>>())),
            Arc::new(Float64Array::from(events.iter().map(|e| e.amt).collect::<Vec<_>>())),
            Arc::new(StringArray::from(events.iter().map(|e| e.status).collect::<Vec<_>>())),
            Arc::new(TimestampMicrosecondArray::from(events.iter().map(|e| e.t).collect::<Vec<_>>())),
            Arc::new(TimestampMicrosecondArray::from(events.iter().map(|e| e.known).collect::<Vec<_>>())),
        ],
    )
    .unwrap()
}

/// Spec section 2, literally: which events (in arrival order) are in the window at T.
fn naive_window(window: Window, events: &[(usize, Event)], t: i64, strict: bool) -> Option<Vec<Event>> {
    let before = |e: i64, bound: i64| if strict { e < bound } else { e <= bound };
    if !events.iter().any(|(_, e)| before(e.t, t)) {
        return None;
    }
    let chosen: Vec<Event> = match window {
        Window::Sliding { width } => events
            .iter()
            .filter(|(_, e)| if strict { t - width <= e.t && e.t < t } else { t - width < e.t && e.t <= t })
            .map(|(_, e)| e.clone())
            .collect(),
        Window::Hopping { width, every } => {
            let mut b = t.div_euclid(every) * every;
            if strict && b == t {
                b -= every;
            }
            events
                .iter()
                .filter(|(_, e)| if strict { b - width <= e.t && e.t < b } else { b - width < e.t && e.t <= b })
                .map(|(_, e)| e.clone())
                .collect()
        }
        Window::Tumbling { width } => {
            let start = t.div_euclid(width) * width;
            events.iter().filter(|(_, e)| start <= e.t && before(e.t, t)).map(|(_, e)| e.clone()).collect()
        }
        Window::Session { gap } => {
            let mut times: Vec<i64> = events.iter().map(|(_, e)| e.t).filter(|e| before(*e, t)).collect();
            times.sort();
            let last = *times.last()?;
            if t - last >= gap {
                vec![]
            } else {
                let mut start = last;
                for pair in times.windows(2).rev() {
                    if pair[1] > start {
                        continue;
                    }
                    if pair[1] - pair[0] < gap {
                        start = pair[0];
                    } else {
                        break;
                    }
                }
                events.iter().filter(|(_, e)| e.t >= start && e.t <= last).map(|(_, e)| e.clone()).collect()
            }
        }
        Window::Lifetime => events.iter().filter(|(_, e)| before(e.t, t)).map(|(_, e)| e.clone()).collect(),
    };
    Some(chosen)
}

/// The aggregates compared with a relative tolerance (decayed sums, spec: 1e-9).
const DECAYED: [usize; 2] = [20, 21];

/// The time decayed aggregates evaluate at: T, or the hop b of a hopping window.
fn evaluation_time(window: Window, t: i64, strict: bool) -> i64 {
    match window {
        Window::Hopping { every, .. } => {
            let b = t.div_euclid(every) * every;
            if strict && b == t { b - every } else { b }
        }
        _ => t,
    }
}

/// A list value as the feature returns it: NULL when empty.
fn list<T: Clone>(values: &[T], of: impl Fn(T) -> ScalarValue, ty: &DataType) -> ScalarValue {
    let list_type = DataType::List(Arc::new(Field::new_list_field(ty.clone(), true)));
    if values.is_empty() {
        return ScalarValue::try_from(&list_type).unwrap();
    }
    let items: Vec<ScalarValue> = values.iter().cloned().map(of).collect();
    ScalarValue::List(ScalarValue::new_list(&items, ty, true))
}

/// PostgreSQL's percentile_cont.
fn percentile_cont(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = q * (sorted.len().checked_sub(1)? as f64);
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[lo] + (rank - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// The expected values over the window's events (given in arrival order), evaluated at `at`.
fn naive_values(window_events: &[Event], at: i64) -> Vec<ScalarValue> {
    let f = |v: Option<f64>| ScalarValue::Float64(v);
    let amts: Vec<f64> = window_events.iter().filter_map(|e| e.amt).collect();
    // Event-time order with ties in arrival order: a stable sort of the arrival-ordered list.
    let mut ordered: Vec<&Event> = window_events.iter().collect();
    ordered.sort_by_key(|e| e.t);
    // Latest first, ties in event time: later arrival first.
    let latest_amts: Vec<f64> = ordered.iter().rev().filter_map(|e| e.amt).collect();
    let latest_statuses: Vec<&str> = ordered.iter().rev().map(|e| e.status).collect();
    let mut descending = amts.clone();
    descending.sort_by(|a, b| b.total_cmp(a));
    let mut ascending_statuses: Vec<&str> = window_events.iter().map(|e| e.status).collect();
    ascending_statuses.sort();
    let decay = |e: &Event, h: i64| 2f64.powf(-((at - e.t) as f64) / h as f64);
    let f64_list = |v: &[f64]| list(v, |x| ScalarValue::Float64(Some(x)), &DataType::Float64);
    let text_list = |v: &[&str]| list(v, |x| ScalarValue::Utf8(Some(x.to_string())), &DataType::Utf8);
    let mut statuses: Vec<&str> = window_events.iter().map(|e| e.status).collect();
    statuses.sort();
    statuses.dedup();
    vec![
        ScalarValue::Int64(Some(window_events.len() as i64)),
        ScalarValue::Int64(Some(amts.len() as i64)),
        f((!amts.is_empty()).then(|| amts.iter().sum())),
        f(amts.iter().cloned().reduce(f64::max)),
        f(amts.iter().cloned().reduce(f64::min)),
        f(ordered.first().and_then(|e| e.amt)),
        f(ordered.last().and_then(|e| e.amt)),
        ScalarValue::Int64(Some(window_events.iter().filter(|e| e.status == "ok").count() as i64)),
        ScalarValue::Int64(Some(statuses.len() as i64)),
        f((!amts.is_empty()).then(|| amts.iter().sum::<f64>() / amts.len() as f64)),
        f((amts.len() >= 2).then(|| {
            let mean = amts.iter().sum::<f64>() / amts.len() as f64;
            amts.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (amts.len() - 1) as f64
        })),
        ScalarValue::Utf8(statuses.first().map(|s| s.to_string())),
        ScalarValue::Utf8(ordered.last().map(|e| e.status.to_string())),
        ScalarValue::Int64(Some({
            let mut distinct: Vec<u64> = amts.iter().map(|a| a.to_bits()).collect();
            distinct.sort();
            distinct.dedup();
            distinct.len() as i64
        })),
        f64_list(&latest_amts[..latest_amts.len().min(3)]),
        f64_list(&descending[..descending.len().min(2)]),
        text_list(&ascending_statuses[..ascending_statuses.len().min(3)]),
        text_list(&latest_statuses[..latest_statuses.len().min(2)]),
        f(percentile_cont(&amts, 0.3)),
        f(percentile_cont(&amts, 1.0)),
        f((!amts.is_empty()).then(|| window_events.iter().filter_map(|e| Some(e.amt? * decay(e, 17 * MIN))).sum())),
        f(Some(window_events.iter().filter(|e| e.status == "ok").map(|e| decay(e, 5 * MIN)).sum())),
    ]
}

fn close(a: &ScalarValue, b: &ScalarValue, relative: bool) -> bool {
    match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) if relative => {
            (x - y).abs() <= 1e-9 * x.abs() + f64::MIN_POSITIVE
        }
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => (x - y).abs() <= 1e-7 * x.abs().max(1.0),
        _ => a == b,
    }
}

fn event_strategy() -> impl Strategy<Value = Event> {
    (
        1i64..4,
        0i64..240,
        prop::option::weighted(0.85, 1u32..100),
        prop::sample::select(vec!["ok", "failed", "void"]),
        // Mostly known within minutes, some hours late, a few "known" before they happened.
        prop_oneof![6 => 0i64..5, 3 => 5i64..300, 1 => -30i64..0],
    )
        .prop_map(|(key, minute, amt, status, delay)| Event {
            key,
            t: minute * MIN,
            amt: amt.map(|a| a as f64),
            status,
            known: (minute + delay) * MIN,
        })
}

fn window_strategy() -> impl Strategy<Value = Window> {
    prop_oneof![
        (1i64..120).prop_map(|m| Window::Sliding { width: m * MIN }),
        (1i64..120, 1i64..60).prop_map(|(w, h)| Window::Hopping { width: w * MIN, every: h * MIN }),
        (1i64..120).prop_map(|m| Window::Tumbling { width: m * MIN }),
        (1i64..30).prop_map(|g| Window::Session { gap: g * MIN }),
        Just(Window::Lifetime),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn incremental_state_matches_the_naive_evaluator(
        events in prop::collection::vec(event_strategy(), 0..60),
        chunk in 1usize..8,
        window in window_strategy(),
        tile_minutes in 1i64..40,
        tile_min_events in 0usize..6,
        probes in prop::collection::vec((1i64..4, -5i64..260, any::<bool>(), any::<bool>()), 1..20),
        known_probes in prop::collection::vec((1i64..4, -5i64..260, any::<bool>(), -10i64..560, prop::option::of(0i64..90)), 1..12),
        distinct_only in any::<bool>(),
        shard_count in 1usize..4,
        started in any::<bool>(),
    ) {
        let compiled = feature(window, tile_minutes, tile_min_events, distinct_only);
        let compared: Vec<usize> = if distinct_only { DISTINCT_ONLY.to_vec() } else { (0..22).collect() };
        // The live state evicts what is older than one window behind its latest event; the
        // scratch state of an ASOF sweep (told its keys) keeps everything until told otherwise.
        let mut state = FeatureState::new(&compiled).unwrap();
        let mut full = FeatureState::scratch(&compiled).unwrap();
        for key in 1i64..4 {
            let key: ArrayRef = Arc::new(Int64Array::from(vec![key]));
            let encoded = full.encode_keys(&[key]).unwrap();
            full.add_key(encoded.row(0).as_ref(), None);
        }
        // Arrival order is the generated order; writes come in chunks, each its own seq.
        // A backfill on several threads: one state per shard of the keys, fed every write,
        // each settled and tiled on its own, then joined; it must answer as the live state
        // does where it holds the window. As a backfill does, they keep no tiles until the end,
        // and may start at the horizon the latest event time (every row's) will set.
        let untiled = compiled.untiled();
        let latest = events.iter().map(|e| e.t).max().filter(|_| started);
        let mut shards: Vec<FeatureState> = (0..shard_count)
            .map(|_| {
                let mut shard = FeatureState::new(&compiled).unwrap();
                latest.inspect(|t| shard.start_from(&untiled, *t));
                shard
            })
            .collect();
        for (seq, part) in events.chunks(chunk).enumerate() {
            state.ingest(&compiled, &batch(part), seq as u64).unwrap();
            full.ingest(&compiled, &batch(part), seq as u64).unwrap();
            let write = shards[0].shard_write(&untiled, &batch(part), shard_count).unwrap();
            for (index, shard) in shards.iter_mut().enumerate() {
                shard.ingest_shard(&untiled, &batch(part), seq as u64, &write, index).unwrap();
            }
        }
        let mut shards = shards.into_iter().map(|mut shard| {
            shard.settle(&untiled);
            shard.build_tiles(&compiled);
            shard
        });
        let mut sharded = shards.next().unwrap();
        shards.for_each(|shard| sharded.absorb(shard));
        prop_assert_eq!(sharded.size(&compiled).0, state.size(&compiled).0);
        // Settled, the joined state holds from one window behind the latest event time,
        // however its shards started.
        let settled = match (compiled.lookback(), events.iter().map(|e| e.t).max()) {
            (Some(lookback), Some(t)) => t.saturating_sub(lookback),
            _ => i64::MIN,
        };
        prop_assert_eq!(sharded.horizon(), settled);
        let arrival: Vec<(usize, Event)> = events.iter().cloned().enumerate().collect();
        for (key, minute, strict, on_event) in probes {
            // Half the probes land exactly on an event time of the key, where boundaries bite.
            let t = match (on_event, events.iter().find(|e| e.key == key)) {
                (true, Some(e)) => e.t,
                _ => minute * MIN,
            };
            let keyed: Vec<(usize, Event)> =
                arrival.iter().filter(|(_, e)| e.key == key && e.status != "void").cloned().collect();
            let at = evaluation_time(window, t, strict);
            let expected = naive_window(window, &keyed, t, strict).map(|w| naive_values(&w, at));
            // The live state answers only where the window starts at or after its horizon.
            let reaches = |kept: &FeatureState| kept.holds(span(&window, t, strict));
            for (name, kept) in [("full", &full), ("live", &state), ("sharded", &sharded)] {
                if name != "full" && !reaches(kept) {
                    continue;
                }
                let actual = match kept.history(&[ScalarValue::Int64(Some(key))]).unwrap() {
                    Some(history) => history.evaluate(&compiled, t, strict).unwrap(),
                    None => None,
                };
                match (&expected, &actual) {
                    (None, None) => {}
                    (Some(e), Some(a)) => {
                        for (i, (x, y)) in compared.iter().map(|c| &e[*c]).zip(a).enumerate() {
                            prop_assert!(close(x, y, DECAYED.contains(&compared[i])), "{} state: value {} at t={} strict={} window={:?}: expected {:?}, got {:?}", name, compiled.def.values[i].name, t / MIN, strict, window, x, y);
                        }
                    }
                    _ => prop_assert!(false, "{} state: match differs at t={} strict={}: expected {:?}, got {:?}", name, t / MIN, strict, expected, actual),
                }
            }
        }
        // Known at K, with or without a staleness bound: the spec over the events known at K,
        // from the whole history (`full`), as an ASOF join reads it.
        // A sweep over each key's probes in time order (as ASOF joins ask) answers as the
        // single evaluations checked below do.
        for (strict, max_age) in [(false, None), (true, None), (false, Some(25 * MIN)), (true, Some(70 * MIN))] {
            for key in 1i64..4 {
                let mut rows: Vec<(i64, i64)> = known_probes.iter().filter(|p| p.0 == key).map(|p| (p.1 * MIN, p.3 * MIN)).collect();
                rows.sort();
                let as_of = AsOf { strict, max_age, known_at: true };
                let reaches = |kept: &FeatureState| rows.first().is_some_and(|r| kept.holds(as_of.reach(&window, r.0)));
                for (name, kept) in [("full", &full), ("live", &state), ("sharded", &sharded)] {
                    if name != "full" && !reaches(kept) {
                        continue;
                    }
                    let encoded = kept.encode_key(&[ScalarValue::Int64(Some(key))]).unwrap();
                    let Some(history) = kept.encoded(&encoded) else { continue };
                    let evicted = kept.evicted_ingest(&encoded);
                    let mut swept = Vec::new();
                    let mut window_state = asofdb::feature::SlidingDistinct::default();
                    history.sweep_known(&compiled, &rows, as_of, evicted, &mut window_state, &mut |v| { swept.push(v); Ok(()) }).unwrap();
                    for (r, got) in rows.iter().zip(&swept) {
                        let single = history.evaluate_known(&compiled, r.0, as_of, r.1, evicted).unwrap();
                        match (&single, got) {
                            (None, None) => {}
                            (Some(e), Some(a)) => {
                                for (i, (x, y)) in e.iter().zip(a).enumerate() {
                                    prop_assert!(close(x, y, false), "{} sweep known at {}: value {} at t={}: single {:?}, swept {:?}", name, r.1 / MIN, i, r.0 / MIN, x, y);
                                }
                            }
                            _ => prop_assert!(false, "{} sweep known: match differs at t={} k={}: {:?} vs {:?}", name, r.0 / MIN, r.1 / MIN, single, got),
                        }
                    }
                }
            }
        }
        for (key, minute, strict, k_minute, max_age) in known_probes {
            let (t, k, max_age) = (minute * MIN, k_minute * MIN, max_age.map(|m| m * MIN));
            let keyed: Vec<(usize, Event)> = arrival
                .iter()
                .filter(|(_, e)| e.key == key && e.status != "void" && e.known <= k)
                .cloned()
                .collect();
            let at = evaluation_time(window, t, strict);
            let latest = keyed.iter().map(|(_, e)| e.t).filter(|e| if strict { *e < t } else { *e <= t }).max();
            let fresh = match (max_age, latest) {
                (Some(age), Some(latest)) => t - latest <= age,
                _ => true,
            };
            let in_window = naive_window(window, &keyed, t, strict).filter(|_| fresh);
            let greatest = in_window.as_ref().and_then(|w| w.iter().map(|e| e.known).max());
            let expected = in_window.map(|w| naive_values(&w, at));
            let as_of = AsOf { strict, max_age, known_at: true };
            // The live state (tiles, evicted events) answers where it holds the window, as an
            // ASOF join would ask it; the whole history answers everywhere.
            let reaches = |kept: &FeatureState| kept.holds(as_of.reach(&window, t));
            for (name, kept) in [("full", &full), ("live", &state), ("sharded", &sharded)] {
                if name != "full" && !reaches(kept) {
                    continue;
                }
                let encoded = kept.encode_key(&[ScalarValue::Int64(Some(key))]).unwrap();
                let actual = match kept.encoded(&encoded) {
                    Some(history) => history.evaluate_known(&compiled, t, as_of, k, kept.evicted_ingest(&encoded)).unwrap(),
                    None => None,
                };
                match (&expected, &actual) {
                    (None, None) => {}
                    (Some(e), Some(a)) => {
                        for (i, (x, y)) in compared.iter().map(|c| &e[*c]).zip(a).enumerate() {
                            prop_assert!(close(x, y, DECAYED.contains(&compared[i])), "{} state known at {}: value {} at t={} strict={} window={:?}: expected {:?}, got {:?}", name, k / MIN, compiled.def.values[i].name, t / MIN, strict, window, x, y);
                        }
                        prop_assert_eq!(a.last(), Some(&ScalarValue::Int64(greatest)), "{} state", name);
                    }
                    _ => prop_assert!(false, "{} state known at {}: match differs at t={} strict={} max_age={:?}: expected {:?}, got {:?}", name, k / MIN, t / MIN, strict, max_age, expected, actual),
                }
            }
        }
    }
}
