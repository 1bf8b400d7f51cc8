//! The burn-down chart, drawn on the server as SVG: people below policy per day (those with no
//! authenticator at all darker), so a rollout's progress reads at a glance and the page needs
//! no chart script. The same numbers are in a table beside it for screen readers.

use super::snapshots::Day;
use crate::csf::esc;

const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 28.0;
const TOP: f64 = 12.0;

/// A round number at or above `n` for the top of the axis.
fn axis_top(n: i64) -> i64 {
    let n = n.max(1);
    let step = 10_i64.pow(u32::try_from(n.to_string().len().saturating_sub(1)).unwrap_or(0));
    (n + step - 1) / step * step
}

/// The chart as an `<svg>` element (`role="img"` with a title naming the trend).
pub fn burn_down(days: &[Day]) -> String {
    if days.is_empty() {
        return "<p class=\"muted\">No snapshot yet: the service takes one a day.</p>".to_owned();
    }
    let top = axis_top(days.iter().map(|d| d.below).max().unwrap_or(0));
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / days.len() as f64;
    let bar = (slot * 0.7).max(1.0);
    let y = |v: i64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let first = &days[0];
    let last = &days[days.len() - 1];
    let title = format!(
        "People below policy, {} to {}: {} then, {} now",
        first.day, last.day, first.below, last.below
    );
    // The title is escaped where it is written; the days are the service's own dates.
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-labelledby=\"burn-title\" data-days=\"{}\">\
         <title id=\"burn-title\">{}</title>",
        days.len(),
        esc(&title)
    );
    for i in 0..=4 {
        let v = top * i / 4;
        let yy = y(v);
        svg.push_str(&format!(
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            W - 8.0,
            LEFT - 6.0,
            yy + 4.0
        ));
    }
    for (i, d) in days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let (yb, yn) = (y(d.below), y(d.none));
        svg.push_str(&format!(
            "<rect class=\"below\" x=\"{x:.1}\" y=\"{yb:.1}\" width=\"{bar:.1}\" height=\"{:.1}\" data-day=\"{}\" data-below=\"{}\"><title>{}: {} below policy ({} with no authenticator) of {}</title></rect>\
             <rect class=\"none\" x=\"{x:.1}\" y=\"{yn:.1}\" width=\"{bar:.1}\" height=\"{:.1}\"/>",
            (TOP + plot_h - yb).max(0.0),
            esc(&d.day),
            d.below,
            esc(&d.day),
            d.below,
            d.none,
            d.people,
            (TOP + plot_h - yn).max(0.0),
        ));
    }
    let label_at = |i: usize, anchor: &str| {
        let x = LEFT + slot * i as f64 + slot / 2.0;
        format!(
            "<text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\">{}</text>",
            H - 8.0,
            esc(&days[i].day)
        )
    };
    svg.push_str(&label_at(0, "start"));
    if days.len() > 1 {
        svg.push_str(&label_at(days.len() - 1, "end"));
    }
    svg.push_str("</svg>");
    svg
}

/// The chart's numbers as a table (inside a `<details>`), for screen readers and for copying.
pub fn table(days: &[Day]) -> String {
    let rows: String = days
        .iter()
        .map(|d| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.day),
                d.people,
                d.below,
                d.none
            )
        })
        .collect();
    format!(
        "<details><summary>The numbers</summary><table><thead><tr><th scope=\"col\">Day</th>\
         <th scope=\"col\">People</th><th scope=\"col\">Below policy</th>\
         <th scope=\"col\">No authenticator</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str, below: i64) -> Day {
        Day {
            day: d.to_owned(),
            people: 10,
            below,
            none: below / 2,
        }
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(axis_top(0), 1);
        assert_eq!(axis_top(7), 7);
        assert_eq!(axis_top(13), 20);
        assert_eq!(axis_top(100), 100);
        assert_eq!(axis_top(101), 200);
    }

    #[test]
    fn bars_shrink_as_people_are_covered() {
        let svg = burn_down(&[
            day("2026-12-01", 8),
            day("2026-12-02", 4),
            day("2026-12-03", 0),
        ]);
        assert!(svg.contains("People below policy, 2026-12-01 to 2026-12-03: 8 then, 0 now"));
        let heights: Vec<f64> = svg
            .split("class=\"below\"")
            .skip(1)
            .map(|s| {
                let h = s.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect();
        assert_eq!(heights.len(), 3);
        assert!(heights[0] > heights[1] && heights[1] > heights[2] && heights[2] == 0.0);
    }

    #[test]
    fn no_snapshot_says_so() {
        assert!(burn_down(&[]).contains("No snapshot yet"));
    }
}
