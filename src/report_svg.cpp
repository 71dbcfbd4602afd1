// curves_svg: line charts of per-epoch metrics as SVG (title, legend, nice ticks, grid, tooltips,
// marker lines), and the text helpers every report uses (HTML escaping, base64).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mnist_gpu/report.hpp"
#include "report_detail.hpp"

namespace mnist_gpu {
namespace {

// The plot area is kPlotHeight tall below the title and the legend, whose rows add to the height
// (one row: 340).
constexpr double kWidth = 560, kPlotHeight = 228, kBelowPlot = 46;
constexpr double kLeft = 64, kRight = kWidth - 20;
constexpr double kLegendTop = 44, kLegendRow = 18;

// A step of 1, 2 or 5 times a power of ten that cuts `range` into about `target` parts.
double nice_step(double range, int target) {
  const double raw = range / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

// Decimals that show every tick of `step` distinctly.
int tick_decimals(double step) {
  return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
}

struct Axis {
  double lo = 0, hi = 1, step = 0.2;
  std::vector<double> ticks;
};

// The y axis: the data's range widened to whole steps.
Axis y_axis(double lo, double hi) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  Axis a;
  a.step = nice_step(hi - lo, 5);
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  for (double t = a.lo; t <= a.hi + a.step * 1e-6; t += a.step) a.ticks.push_back(std::abs(t) < a.step * 1e-9 ? 0.0 : t);
  return a;
}

// The x axis (epochs): exactly the data's range, whole-number ticks.
Axis x_axis(double lo, double hi) {
  Axis a;
  if (!(hi > lo)) {
    a.lo = lo - 0.5;
    a.hi = hi + 0.5;
    a.step = 1;
    a.ticks.push_back(lo);
    return a;
  }
  a.lo = lo;
  a.hi = hi;
  a.step = std::max(1.0, nice_step(hi - lo, 8));
  for (double t = std::ceil(lo / a.step) * a.step; t <= hi + 1e-9; t += a.step) a.ticks.push_back(t);
  if (a.ticks.empty() || a.ticks.front() - lo >= a.step / 2) a.ticks.insert(a.ticks.begin(), lo);
  return a;
}

std::string num(double v) { return fmt::format("{:.1f}", v); }

}  // namespace

namespace detail {

std::string format_value(double v, bool percent) {
  if (std::isnan(v)) return "-";
  return percent ? fmt::format("{:.2f}%", 100 * v) : fmt::format("{:.4f}", v);
}

std::string curves_svg(const std::vector<CurveSeries>& series, const std::string& title, const std::string& y_label,
                       bool percent, const std::vector<CurveMark>& marks, bool standalone) {
  const double scale = percent ? 100.0 : 1.0;
  // The data's ranges, over finite points only.
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  std::size_t points = 0;
  for (const auto& s : series)
    for (std::size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i] * scale);
      yhi = std::max(yhi, s.y[i] * scale);
      ++points;
    }
  const bool empty = points == 0;
  if (empty) xlo = 1, xhi = 1, ylo = 0, yhi = 1;
  const Axis ax = x_axis(xlo, xhi), ay = y_axis(ylo, yhi);

  // The legend: items in rows that wrap at the plot's width (text width estimated at 6.8 px/char).
  struct Item {
    const CurveSeries* s;
    double x, y;
  };
  std::vector<Item> items;
  double lx = kLeft, ly = kLegendTop;
  for (const auto& s : series) {
    const double w = 30 + 6.8 * static_cast<double>(s.label.size()) + 18;
    if (lx > kLeft && lx + w > kRight) lx = kLeft, ly += kLegendRow;
    items.push_back({&s, lx, ly});
    lx += w;
  }
  const double top = (series.empty() ? kLegendTop - kLegendRow : ly) + kLegendRow + 4;
  const double bottom = top + kPlotHeight, height = bottom + kBelowPlot;
  auto px = [&](double x) { return kLeft + (x - ax.lo) / (ax.hi - ax.lo) * (kRight - kLeft); };
  auto py = [&](double y) { return bottom - (y - ay.lo) / (ay.hi - ay.lo) * (bottom - top); };

  std::string o;
  o += fmt::format(
      "<svg {}viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{}\" "
      "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif\" "
      "font-size=\"12\" fill=\"#1d2330\">\n",
      standalone ? "xmlns=\"http://www.w3.org/2000/svg\" " : "", kWidth, height, kWidth, height, html_escape(title));
  o += fmt::format("<title>{}</title>\n", html_escape(title));
  o += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", kWidth, height);
  o += fmt::format("<text x=\"{}\" y=\"24\" font-size=\"15\" font-weight=\"600\">{}</text>\n", num(kLeft),
                   html_escape(title));
  for (const auto& it : items) {
    const double cy = it.y - 4;
    o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2.5\"{}/>", num(it.x),
                     num(cy), num(it.x + 22), num(cy), html_escape(it.s->colour),
                     it.s->dashed ? " stroke-dasharray=\"5 3\"" : "");
    o += fmt::format("<text x=\"{}\" y=\"{}\">{}</text>\n", num(it.x + 28), num(it.y), html_escape(it.s->label));
  }

  // Grid and y ticks, x ticks, axes, axis labels.
  for (double t : ay.ticks) {
    o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#e6e8ec\"/>", num(kLeft), num(py(t)),
                     num(kRight), num(py(t)));
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#4a5263\">{}{}</text>\n", num(kLeft - 7),
                     num(py(t) + 4), axis_tick_label(t, ay.step), percent ? "%" : "");
  }
  for (double t : ax.ticks) {
    o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#9aa1ad\"/>", num(px(t)), num(bottom),
                     num(px(t)), num(bottom + 5));
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#4a5263\">{:.0f}</text>\n", num(px(t)),
                     num(bottom + 18), t);
  }
  o += fmt::format("<path d=\"M{} {}V{}H{}\" fill=\"none\" stroke=\"#9aa1ad\"/>\n", num(kLeft), num(top), num(bottom),
                   num(kRight));
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#4a5263\">epoch</text>\n",
                   num((kLeft + kRight) / 2), num(height - 10));
  o += fmt::format(
      "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\" fill=\"#4a5263\">{}</text>\n",
      num((top + bottom) / 2), html_escape(y_label));
  if (empty)
    o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#8a91a0\">no data</text>\n",
                     num((kLeft + kRight) / 2), num((top + bottom) / 2));

  for (const auto& m : marks) {
    if (!std::isfinite(m.x) || m.x < ax.lo || m.x > ax.hi) continue;
    const double x = px(m.x);
    const bool right_half = x > (kLeft + kRight) / 2;
    o += fmt::format("<g class=\"mark\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#6b7280\" "
                     "stroke-dasharray=\"4 4\"/><text x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"11\" "
                     "fill=\"#4a5263\" stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text></g>\n",
                     num(x), num(top), num(x), num(bottom), num(x + (right_half ? -5 : 5)), num(top + 12),
                     right_half ? "end" : "start", html_escape(m.label));
  }

  // The series: one path each (a NaN breaks the line), points with tooltips when not crowded.
  for (const auto& s : series) {
    std::string d;
    bool pen_down = false;
    const std::size_t n = std::min(s.x.size(), s.y.size());
    std::size_t shown = 0;
    for (std::size_t i = 0; i < n; ++i) shown += std::isfinite(s.x[i]) && std::isfinite(s.y[i]);
    std::string dots;
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        pen_down = false;
        continue;
      }
      const double x = px(s.x[i]), y = py(s.y[i] * scale);
      d += fmt::format("{}{} {}", pen_down ? "L" : (d.empty() ? "M" : " M"), num(x), num(y));
      pen_down = true;
      if (shown <= 60)
        dots += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{}\"><title>{}, epoch {:g}: {}</title></circle>",
                            num(x), num(y), html_escape(s.colour), html_escape(s.label), s.x[i],
                            format_value(s.y[i], percent));
    }
    if (d.empty()) continue;
    o += fmt::format("<path class=\"series\" data-label=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" "
                     "stroke-width=\"2.2\" stroke-linejoin=\"round\"{}/>\n",
                     html_escape(s.label), d, html_escape(s.colour), s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    if (!dots.empty()) o += "<g>" + dots + "</g>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace detail

std::string curves_svg(const std::vector<CurveSeries>& series, const std::string& title, const std::string& y_label,
                       bool percent, const std::vector<CurveMark>& marks) {
  return detail::curves_svg(series, title, y_label, percent, marks, /*standalone=*/true);
}

std::string axis_tick_label(double value, double step) {
  if (!(step > 0) || !std::isfinite(step)) step = 1;
  if (value == 0 || std::abs(value) < step * 1e-9) return "0";
  const std::string fixed = fmt::format("{:.{}f}", value, tick_decimals(step));
  if (fixed.size() <= 7) return fixed;
  // m.mmm e E, with as many mantissa decimals as the step needs at this magnitude.
  int e = static_cast<int>(std::floor(std::log10(std::abs(value)) + 1e-9));
  const int step_e = static_cast<int>(std::floor(std::log10(step) + 1e-9));
  const int decimals = std::max(0, e - step_e);
  double mantissa = value / std::pow(10.0, e);
  if (std::abs(std::stod(fmt::format("{:.{}f}", mantissa, decimals))) >= 10) mantissa /= 10, ++e;
  const std::string compact = fmt::format("{:.{}f}e{}", mantissa, decimals, e);
  return compact.size() < fixed.size() ? compact : fixed;
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::vector<std::uint8_t>& bytes) {
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = static_cast<std::uint32_t>(bytes[i]) << 16 | static_cast<std::uint32_t>(bytes[i + 1]) << 8 |
                            bytes[i + 2];
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const std::uint32_t v = static_cast<std::uint32_t>(bytes[i]) << 16;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    const std::uint32_t v = static_cast<std::uint32_t>(bytes[i]) << 16 | static_cast<std::uint32_t>(bytes[i + 1]) << 8;
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += '=';
  }
  return out;
}

}  // namespace mnist_gpu
