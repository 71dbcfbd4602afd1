// Internal to the report sources (src/report*.cpp): the chart with or without its xmlns, and the
// page frame and number formats the training and sweep pages share.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "mnist_gpu/report.hpp"

namespace mnist_gpu::detail {

/// curves_svg; `standalone` adds the xmlns a .svg file needs (inline HTML5 SVG needs none, and
/// without it the page holds no URL at all).
std::string curves_svg(const std::vector<CurveSeries>& series, const std::string& title, const std::string& y_label,
                       bool percent, const std::vector<CurveMark>& marks, bool standalone);

/// A metric as the reports show it: "93.87%" (percent) or "0.2080"; "-" for NaN.
std::string format_value(double v, bool percent);

/// The opening of a report page up to and including <body><main>, with the shared stylesheet.
std::string page_head(const std::string& title);

/// The page's provenance lines (date, command) for its header; "" when the stamp is empty.
std::string stamp_html(const ReportStamp& stamp);

/// The end of a report page: footer, the image-check script, </main></body></html>.
std::string page_tail();

/// The 28x28 digit at row `index` of `data` as a grey PNG, dark ink on white.
std::vector<std::uint8_t> digit_png(const Dataset& data, int index);

/// The i-th colour of the reports' palette (distinct for i < 10, then repeating).
const char* palette(std::size_t i);

}  // namespace mnist_gpu::detail
