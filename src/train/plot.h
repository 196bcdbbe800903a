// The loss-curve image `slm train` writes (loss.png): a tiny RGB raster, a line chart of the
// training loss (raw and smoothed) and validation loss, and a self-contained PNG encoder.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace slm::train {

// CRC-32 (IEEE 802.3, as PNG chunks and zlib's crc32 use); crc chains across calls.
uint32_t crc32(const void* data, uint64_t n, uint32_t crc = 0);

// An 8-bit RGB image, row-major, 3 bytes per pixel.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Image(int w, int h, uint8_t fill = 255)
      : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3, fill) {}
};

// PNG bytes: IHDR (8-bit RGB), one IDAT holding a zlib stream (one fixed-Huffman deflate block
// of literals and distance-1 runs over rows filtered None/Sub/Up), Adler-32 trailer, IEND.
std::string encode_png(const Image& img);

struct LossSeries {
  std::vector<std::pair<int64_t, double>> train;  // (step, loss)
  std::vector<std::pair<int64_t, double>> val;
  int64_t max_steps = 0;                          // x axis extent (0: the last step)
};

// The chart colours (tests look for them in the decoded image).
inline constexpr uint8_t k_plot_train_rgb[3] = {31, 119, 180};   // smoothed train loss
inline constexpr uint8_t k_plot_val_rgb[3] = {214, 39, 40};      // validation loss
inline constexpr uint8_t k_plot_raw_rgb[3] = {174, 199, 232};    // raw train loss

// Draws the chart: axes with labelled ticks, raw train loss (light), its centred moving
// average (dark), and validation loss (red line with dots). Non-finite values are skipped.
Image plot_losses(const LossSeries& s, int width = 800, int height = 480);

// plot_losses + encode_png + write_file_atomic.
Status write_loss_plot(const std::string& path, const LossSeries& s);

}  // namespace slm::train
