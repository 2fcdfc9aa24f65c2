//! The results plot (SVG, drawn with plotters' SVG backend): every ratio
//! of a figure to its same-run baseline as a horizontal bar, coloured by
//! section, with the goal marked on the bar where there is one and a line
//! at 1.0; below, the loopback rows: accepted against offered
//! transactions per second, and inclusion latency against offered load.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::report::{Report, Row};

const WIDTH: u32 = 1200;
const BAR_H: u32 = 19;
const PANEL_H: u32 = 380;
/// Where the ratio axis is cut.
const CUT: f64 = 2.2;

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A bar of the ratio chart.
struct Bar {
    label: String,
    ratio: f64,
    goal: Option<f64>,
    colour: RGBColor,
}

/// The loopback series: (offered, accepted) k tx/s; (offered, p50, p99) ms.
type Load = (Vec<(f64, f64)>, Vec<(f64, f64, f64)>);

fn loopback_series(rep: &Report) -> Option<Load> {
    let s = rep.sections.iter().find(|s| s.name == "loopback" && s.skipped.is_none())?;
    let find =
        |label: &str, what: &str| -> Option<&Row> { s.rows.iter().find(|r| r.name == format!("{label}: {what}")) };
    let mut acc = Vec::new();
    let mut lat = Vec::new();
    for r in s.rows.iter().filter(|r| r.name.ends_with(": accepted")) {
        let label = r.name.trim_end_matches(": accepted");
        let offered = r.baseline?;
        acc.push((offered, r.value));
        if let (Some(p50), Some(p99)) = (find(label, "inclusion p50"), find(label, "inclusion p99")) {
            lat.push((offered, p50.value, p99.value));
        }
    }
    (!acc.is_empty()).then_some((acc, lat))
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("plot: {e}")
}

type Panel<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A loopback panel: offered k tx/s across, `y_desc` up, from 0 to `max`.
fn panel<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    max: (f64, f64),
    y_desc: &str,
) -> Result<Panel<'a, 'b>, String> {
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 15))
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max.0, 0f64..max.1)
        .map_err(err)?;
    c.configure_mesh().max_light_lines(1).x_desc("offered k tx/s").y_desc(y_desc).draw().map_err(err)?;
    Ok(c)
}

/// The series' legend, lower right, over a light background.
fn legend_lower_right<'a, 'b: 'a>(c: &mut Panel<'a, 'b>) -> Result<(), String> {
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)
}

/// Draws the plot of `rep` to `path`.
pub fn write_svg(rep: &Report, path: &Path) -> Result<(), String> {
    let mut bars = Vec::new();
    let mut legend = Vec::new();
    for (si, s) in rep.sections.iter().enumerate() {
        let colour = PALETTE[si % PALETTE.len()];
        let before = bars.len();
        for r in &s.rows {
            if let Some(ratio) = r.ratio.filter(|x| x.is_finite()) {
                let base = r.baseline_name.as_deref().unwrap_or("baseline");
                bars.push(Bar { label: format!("{} vs {base}", r.name), ratio, goal: r.goal, colour });
            }
        }
        if bars.len() > before {
            legend.push((s.name.clone(), colour));
        }
    }
    let n = bars.len().max(1);
    let top_h = 110 + BAR_H * n as u32;
    let load = loopback_series(rep);
    let height = top_h + if load.is_some() { PANEL_H } else { 50 };
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, bottom) = root.split_vertically(top_h);

    // Ratios above CUT (batch-verify speed-ups) are drawn to the cut, so
    // that the ratios near the goals keep a readable scale.
    let widest = bars.iter().flat_map(|b| [b.ratio, b.goal.unwrap_or(0.0)]).fold(1.2f64, f64::max);
    let xmax = widest.min(CUT) * 1.12;
    let title = format!(
        "attnet-bench {} on {} ({}, {} cores){}: figure / same-run baseline",
        rep.date,
        rep.host,
        rep.cpu,
        rep.cores,
        if rep.quick { ", quick" } else { "" }
    );
    let mut chart = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(440)
        .build_cartesian_2d(0f64..xmax, (0..n as i32).into_segmented())
        .map_err(err)?;
    let labels: Vec<String> = bars.iter().rev().map(|b| b.label.clone()).collect();
    let fmt_y = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(1)
        .y_labels(n)
        .y_label_formatter(&fmt_y)
        .y_label_style(("sans-serif", 12))
        .x_desc(format!("ratio (figure / baseline); | = goal; » = bar cut at {CUT}"))
        .x_label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let at = |i: usize| (n - 1 - i) as i32;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut r = Rectangle::new(
                [(0.0, SegmentValue::Exact(at(i))), (b.ratio.min(CUT), SegmentValue::Exact(at(i) + 1))],
                b.colour.mix(0.8).filled(),
            );
            r.set_margin(3, 3, 0, 0);
            r
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!("{:.2}{}", b.ratio, if b.ratio > CUT { " »" } else { "" }),
                (b.ratio.min(CUT) + xmax * 0.005, SegmentValue::CenterOf(at(i))),
                ("sans-serif", 11),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            let g = b.goal?;
            Some(PathElement::new(
                vec![(g, SegmentValue::Exact(at(i))), (g, SegmentValue::Exact(at(i) + 1))],
                BLACK.stroke_width(3),
            ))
        }))
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, SegmentValue::Exact(0)), (1.0, SegmentValue::Exact(n as i32))],
            RGBColor(120, 120, 120).stroke_width(1),
        )))
        .map_err(err)?;
    // Legend: sections by colour, top right.
    for (k, (name, c)) in legend.iter().enumerate() {
        let y = 40 + 18 * k as i32;
        let x = WIDTH as i32 - 150;
        top.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], c.filled())).map_err(err)?;
        top.draw(&Text::new(name.clone(), (x + 18, y), ("sans-serif", 13))).map_err(err)?;
    }

    let (left, right) = bottom.split_horizontally(WIDTH / 2);
    match load {
        None => {
            let why = rep
                .sections
                .iter()
                .find(|s| s.name == "loopback")
                .map(|s| s.skipped.clone().unwrap_or_default())
                .unwrap_or_else(|| "not run".into());
            let mut why: String = why.chars().take(120).collect();
            if why.is_empty() {
                why = "no rows".into();
            }
            bottom.draw(&Text::new(format!("loopback: skipped ({why})"), (20, 15), ("sans-serif", 14))).map_err(err)?;
        }
        Some((acc, lat)) => {
            let max = acc.iter().flat_map(|(o, a)| [*o, *a]).fold(0.0f64, f64::max) * 1.1 + 1e-9;
            let mut c = panel(&left, "loopback UDP: accepted vs offered (k tx/s)", (max, max), "accepted k tx/s")?;
            c.draw_series(LineSeries::new(vec![(0.0, 0.0), (max, max)], RGBColor(170, 170, 170)))
                .map_err(err)?
                .label("accepted = offered")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RGBColor(170, 170, 170)));
            c.draw_series(LineSeries::new(acc.clone(), PALETTE[0].stroke_width(2)))
                .map_err(err)?
                .label("accepted")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], PALETTE[0].stroke_width(2)));
            c.draw_series(acc.iter().map(|p| Circle::new(*p, 4, PALETTE[0].filled()))).map_err(err)?;
            legend_lower_right(&mut c)?;

            let xmax = acc.iter().map(|p| p.0).fold(0.0f64, f64::max) * 1.1 + 1e-9;
            let ymax = lat.iter().map(|p| p.2).fold(0.0f64, f64::max) * 1.15 + 1e-9;
            let mut c = panel(&right, "loopback UDP: submit→inclusion latency (ms)", (xmax, ymax), "ms")?;
            for (k, (name, pick)) in [("p50", 0usize), ("p99", 1)].into_iter().enumerate() {
                let pts: Vec<(f64, f64)> = lat.iter().map(|p| (p.0, if pick == 0 { p.1 } else { p.2 })).collect();
                let col = PALETTE[k + 1];
                c.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
                    .map_err(err)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2)));
                c.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, col.filled()))).map_err(err)?;
            }
            legend_lower_right(&mut c)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}
