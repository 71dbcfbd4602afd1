// How a run records itself for its reader: the command line as a shell would take it back, and
// the moment in UTC (ISO 8601), for reports and the resume command.
#pragma once
#include <ctime>
#include <string>
#include <vector>

namespace mnist_gpu {

/// `word` as one POSIX shell word: unchanged when it holds only characters no shell treats
/// specially (letters, digits, - _ . / : , = + @ %), else in single quotes ('\'' for a quote).
std::string shell_quote(const std::string& word);

/// The words joined by spaces, each shell_quote'd: a command that can be pasted back.
std::string shell_command(const std::vector<std::string>& words);

/// `t` as UTC in ISO 8601 to the second, e.g. "2024-05-01T13:45:07Z".
std::string utc_iso8601(std::time_t t);

}  // namespace mnist_gpu
