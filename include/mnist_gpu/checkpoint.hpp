// Training checkpoints: the configuration, the backend's TrainState and the TrainProgress, enough
// to resume a run exactly (every epoch's order derives from the seed and the epoch number).
//
// Format, version 4 (laid out as version 3; version 4 adds settings to "config": input_dropout,
// max_norm, init_uniform, rho, rms_eps, precision, the augment settings, and the optimizer
// rmsprop with its "sq"), little-endian:
//   "MNGPUCKP"            8 bytes magic
//   u32 version           4
//   u64 header_bytes      length of the JSON header that follows
//   header                JSON: {"config": {...}, "step": N, "done": [epoch metrics...],
//                         "partial": {"loss_sum", "correct", "samples", "batches"}, "partial_s": s,
//                         "arrays": [{"name": "params", "count": P}, {"name": "optimizer/m", "count": P},
//                                    ..., {"name": "best", "count": 0 or P}]}
//   f32 arrays            each listed array's floats, in the listed order: "params" (the model's
//                         parameter arena), "optimizer/NAME" for each of optimizer_state_names(kind)
//                         (sgd none; momentum velocity; adam m, v; rmsprop sq), "best" (the best epoch's
//                         parameters, kept for early stopping's restore; 0 floats when none)
//   u32 crc32             zlib CRC-32 of every byte before it
// "config" holds the settings table's stored settings (settings.hpp, config_to_json). Version 4
// has the layout of version 3 and adds the deformation settings (augment, aug_*) to the config;
// a version-3 config lacks them (no deformation).
// Versions 1 and 2 are still read: after the header they have u64 n_params, n_s1, n_s2 (and from
// version 2 n_best), then f32 params, s1, s2 (the optimizer's tensors in name order), best; a
// version-1 config lacks the settings added in version 2 (their defaults, all "off", are used).
// A reader checks the size, magic, version and CRC before parsing, and every array's name and
// count against what the configuration implies before allocating.
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mnist_gpu/backend.hpp"
#include "mnist_gpu/config.hpp"
#include "mnist_gpu/settings.hpp"
#include "mnist_gpu/train.hpp"

namespace mnist_gpu {

inline constexpr std::uint32_t kCheckpointVersion = 4;

struct Checkpoint {
  TrainConfig config;  ///< the settings that determine the result (paths are not stored)
  TrainState state;
  TrainProgress progress;
};

/// One epoch's metrics as the checkpoint header, the --metrics lines and sweep.json store them
/// (NaN as null), and back (strict: an "epoch" that is not an int is refused, with Error).
nlohmann::json epoch_to_json(const EpochMetrics& m);
EpochMetrics epoch_from_json(const nlohmann::json& j);

/// Writes atomically (write_file_atomically): a crash leaves the previous checkpoint readable.
void write_checkpoint(const std::filesystem::path& path, const Checkpoint& ckpt);

/// Reads and validates; Error naming the file and what is wrong (not a checkpoint, a newer
/// version, checksum mismatch, truncated, absurd sizes, inconsistent counts).
Checkpoint read_checkpoint(const std::filesystem::path& path);

/// The same checks as read_checkpoint on a file already in memory; `name` starts every error
/// message, as the path does for read_checkpoint.
Checkpoint parse_checkpoint(const std::vector<std::uint8_t>& bytes, const std::string& name);

}  // namespace mnist_gpu
