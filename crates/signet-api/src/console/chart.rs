//! The overview's charts: server-rendered inline SVG bar charts (one bar per hour), styled
//! by the console's stylesheet through classes, so no script and no inline style is needed.
//! Each chart carries a text summary for screen readers.

use std::fmt::Write as _;

use signet_store::HourlyActivity;
use time::OffsetDateTime;

use super::html::esc;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 160;
const LEFT: u32 = 40;
const BOTTOM: u32 = 20;

/// Per-hour counts for the `hours` hours ending with the current one, oldest first
/// (missing hours are zero).
pub(crate) fn per_hour(
    activity: &[HourlyActivity],
    now: OffsetDateTime,
    hours: u32,
    value: impl Fn(&HourlyActivity) -> u64,
) -> Vec<(OffsetDateTime, u64)> {
    let current = now.unix_timestamp().div_euclid(3600);
    let first = current - i64::from(hours) + 1;
    let mut out: Vec<(OffsetDateTime, u64)> = (first..=current)
        .map(|h| {
            (
                OffsetDateTime::from_unix_timestamp(h * 3600).unwrap_or(now),
                0,
            )
        })
        .collect();
    for a in activity {
        let h = a.hour.unix_timestamp().div_euclid(3600);
        if let Some(slot) = usize::try_from(h - first).ok().and_then(|i| out.get_mut(i)) {
            slot.1 = value(a);
        }
    }
    out
}

/// A bar chart of `series` titled `title`; `class` picks the bars' colour.
pub(crate) fn bars(title: &str, class: &str, series: &[(OffsetDateTime, u64)]) -> String {
    let max = series.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let total: u64 = series.iter().map(|(_, v)| *v).sum();
    let n = u32::try_from(series.len()).unwrap_or(1).max(1);
    let plot_w = WIDTH - LEFT;
    let plot_h = HEIGHT - BOTTOM;
    let slot = f64::from(plot_w) / f64::from(n);
    let mut out = String::new();
    let summary = format!(
        "{title}: {total} in the last {n} hours, at most {max} in one hour",
        max = series.iter().map(|(_, v)| *v).max().unwrap_or(0)
    );
    let _ = write!(
        out,
        "<figure class=\"chart\"><figcaption>{t}</figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{s}\" \
         preserveAspectRatio=\"none\" class=\"chart-svg\">\
         <title>{s}</title>",
        t = esc(title),
        s = esc(&summary)
    );
    // Axis and a top gridline with the maximum.
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{plot_h}\" x2=\"{WIDTH}\" y2=\"{plot_h}\"/>\
         <line class=\"grid\" x1=\"{LEFT}\" y1=\"1\" x2=\"{WIDTH}\" y2=\"1\"/>\
         <text class=\"label\" x=\"{x}\" y=\"12\" text-anchor=\"end\">{max}</text>\
         <text class=\"label\" x=\"{x}\" y=\"{plot_h}\" text-anchor=\"end\">0</text>",
        x = LEFT - 4
    );
    for (i, (hour, v)) in series.iter().enumerate() {
        let i = f64::from(u32::try_from(i).unwrap_or(0));
        // Precision loss only matters past 2^53 certificates an hour.
        #[allow(clippy::cast_precision_loss)]
        let h = (*v as f64) / (max as f64) * f64::from(plot_h - 2);
        let x = f64::from(LEFT) + i * slot + slot * 0.1;
        let y = f64::from(plot_h) - h;
        let _ = write!(
            out,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\">\
             <title>{label}: {v}</title></rect>",
            w = slot * 0.8,
            label = esc(&super::html::when(*hour))
        );
    }
    // Hour labels: the first, the middle and the last.
    for idx in [0, series.len() / 2, series.len().saturating_sub(1)] {
        if let Some((hour, _)) = series.get(idx) {
            let i = f64::from(u32::try_from(idx).unwrap_or(0));
            let x = f64::from(LEFT) + i * slot + slot / 2.0;
            let _ = write!(
                out,
                "<text class=\"label\" x=\"{x:.1}\" y=\"{y}\" text-anchor=\"middle\">{d:02}/{m:02} {hh:02}h</text>",
                y = HEIGHT - 4,
                d = hour.day(),
                m = u8::from(hour.month()),
                hh = hour.hour()
            );
        }
    }
    out.push_str("</svg></figure>");
    out
}
