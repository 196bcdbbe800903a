// Loss chart rasterizer and PNG encoder. The encoder needs no library: filtered scanlines and a
// fixed-Huffman deflate of byte runs shrink a mostly-white chart ~50x.
#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/mmap.h"

namespace slm::train {

namespace {

const uint32_t* crc_table() {
  static const auto table = [] {
    static uint32_t t[256];
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  return table;
}

void put_be32(std::string* s, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  s->append(b, 4);
}

void put_chunk(std::string* png, const char type[4], const std::string& data) {
  put_be32(png, static_cast<uint32_t>(data.size()));
  std::string body(type, 4);
  body += data;
  png->append(body);
  put_be32(png, crc32(body.data(), body.size()));
}

// 5x7 glyphs for the characters the axis labels use; each row is 5 bits, MSB on the left.
struct Glyph {
  char c;
  uint8_t rows[7];
};
constexpr Glyph k_font[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'k', {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12}}, {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}}, {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}}, {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}}, {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}}, {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}}, {'g', {0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E}},
    {'m', {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11}}, {'h', {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11}},
    {'d', {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F}}, {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
};

class Canvas {
 public:
  explicit Canvas(Image* img) : img_(img) {}
  void set(int x, int y, const uint8_t c[3]) {
    if (x < 0 || y < 0 || x >= img_->width || y >= img_->height) return;
    std::memcpy(&img_->rgb[(static_cast<size_t>(y) * img_->width + x) * 3], c, 3);
  }
  void rect(int x0, int y0, int x1, int y1, const uint8_t c[3]) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  // Bresenham, `thick` pixels wide (a square brush).
  void line(int x0, int y0, int x1, int y1, const uint8_t c[3], int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      rect(x0 - (thick - 1) / 2, y0 - (thick - 1) / 2, x0 + thick / 2, y0 + thick / 2, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }
  // Text with its top-left corner at (x, y); unknown characters leave a blank cell.
  void text(int x, int y, const std::string& s, const uint8_t c[3]) {
    for (char ch : s) {
      for (const Glyph& g : k_font) {
        if (g.c != ch) continue;
        for (int r = 0; r < 7; ++r)
          for (int b = 0; b < 5; ++b)
            if (g.rows[r] & (0x10 >> b)) set(x + b, y + r, c);
      }
      x += 6;
    }
  }
  static int text_width(const std::string& s) { return static_cast<int>(s.size()) * 6; }

 private:
  Image* img_;
};

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over span.
double nice_step(double span, int target) {
  if (!(span > 0)) return 1;
  const double raw = span / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * p >= raw) return m * p;
  }
  return 10 * p;
}

std::string tick_label(double v, double step) {
  char buf[32];
  if (std::fabs(v) < step * 1e-6) v = 0;  // no "-0" from accumulated rounding
  if (std::fabs(v) >= 1e6 && step >= 1e5) {
    std::snprintf(buf, sizeof buf, "%gM", v / 1e6);
  } else if (std::fabs(v) >= 1e4 && step >= 1e3) {
    std::snprintf(buf, sizeof buf, "%gk", v / 1e3);
  } else {
    const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 6), v);
  }
  return buf;
}

// Deflate (RFC 1951) as one block with the fixed Huffman codes, using only distance-1
// matches: runs of a repeated byte become (length, distance 1) pairs, all else literals.
// Small and enough for filtered chart scanlines (mostly zero runs).
class BitWriter {
 public:
  explicit BitWriter(std::string* out) : out_(out) {}
  // Bits go out least-significant first.
  void bits(uint32_t v, int n) {
    acc_ |= static_cast<uint64_t>(v) << n_;
    n_ += n;
    while (n_ >= 8) {
      out_->push_back(static_cast<char>(acc_ & 0xFF));
      acc_ >>= 8;
      n_ -= 8;
    }
  }
  // Huffman codes are defined most-significant bit first.
  void code(uint32_t c, int n) {
    uint32_t r = 0;
    for (int i = 0; i < n; ++i) r |= ((c >> i) & 1u) << (n - 1 - i);
    bits(r, n);
  }
  void flush() {
    if (n_ > 0) out_->push_back(static_cast<char>(acc_ & 0xFF));
    acc_ = 0;
    n_ = 0;
  }

 private:
  std::string* out_;
  uint64_t acc_ = 0;
  int n_ = 0;
};

void fixed_literal(BitWriter& w, int sym) {
  if (sym < 144) {
    w.code(0x30 + sym, 8);
  } else if (sym < 256) {
    w.code(0x190 + (sym - 144), 9);
  } else if (sym < 280) {
    w.code(sym - 256, 7);
  } else {
    w.code(0xC0 + (sym - 280), 8);
  }
}

void deflate_runs(const std::string& data, std::string* out) {
  static constexpr int k_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                     31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
  static constexpr int k_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
  BitWriter w(out);
  w.bits(1, 1);  // BFINAL
  w.bits(1, 2);  // BTYPE 01: fixed Huffman codes
  const size_t n = data.size();
  size_t i = 0;
  while (i < n) {
    size_t run = 0;
    if (i > 0) {
      while (run < 258 && i + run < n && data[i + run] == data[i - 1]) ++run;
    }
    if (run >= 3) {
      int c = 28;
      while (k_base[c] > static_cast<int>(run)) --c;
      fixed_literal(w, 257 + c);
      if (k_extra[c]) w.bits(static_cast<uint32_t>(static_cast<int>(run) - k_base[c]), k_extra[c]);
      w.code(0, 5);  // distance code 0: distance 1
      i += run;
    } else {
      fixed_literal(w, static_cast<unsigned char>(data[i]));
      ++i;
    }
  }
  fixed_literal(w, 256);  // end of block
  w.flush();
}

}  // namespace

uint32_t crc32(const void* data, uint64_t n, uint32_t crc) {
  const uint32_t* t = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (uint64_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string encode_png(const Image& img) {
  // Scanlines, each with the PNG filter (None, Sub or Up) that leaves the smallest sum of
  // absolute byte values (the usual heuristic): a chart is mostly flat colour, which the
  // filters turn into runs of zeros for the run-length deflate below.
  const size_t row_bytes = static_cast<size_t>(img.width) * 3;
  std::string raw;
  raw.reserve((row_bytes + 1) * img.height);
  std::vector<uint8_t> cand[3];
  for (auto& c : cand) c.resize(row_bytes);
  for (int y = 0; y < img.height; ++y) {
    const uint8_t* cur = &img.rgb[y * row_bytes];
    const uint8_t* up = y > 0 ? cur - row_bytes : nullptr;
    uint64_t cost[3] = {0, 0, 0};
    for (size_t i = 0; i < row_bytes; ++i) {
      cand[0][i] = cur[i];
      cand[1][i] = static_cast<uint8_t>(cur[i] - (i >= 3 ? cur[i - 3] : 0));
      cand[2][i] = static_cast<uint8_t>(cur[i] - (up ? up[i] : 0));
      for (int f = 0; f < 3; ++f) cost[f] += static_cast<uint64_t>(std::abs(static_cast<int8_t>(cand[f][i])));
    }
    const int best = cost[1] < cost[0] ? (cost[2] < cost[1] ? 2 : 1) : (cost[2] < cost[0] ? 2 : 0);
    raw.push_back(static_cast<char>(best));
    raw.append(reinterpret_cast<const char*>(cand[best].data()), row_bytes);
  }
  // zlib header: CMF 0x78 (deflate, 32K window), FLG 0x01 (CMF*256+FLG a multiple of 31).
  std::string z = {'\x78', '\x01'};
  deflate_runs(raw, &z);
  // Adler-32 of the uncompressed data, big-endian.
  uint32_t a = 1, b = 0;
  for (unsigned char ch : raw) {
    a = (a + ch) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(&z, (b << 16) | a);

  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(&ihdr, static_cast<uint32_t>(img.width));
  put_be32(&ihdr, static_cast<uint32_t>(img.height));
  ihdr += {'\x08', '\x02', '\x00', '\x00', '\x00'};  // 8-bit, RGB, deflate, filter 0, no interlace
  put_chunk(&png, "IHDR", ihdr);
  put_chunk(&png, "IDAT", z);
  put_chunk(&png, "IEND", "");
  return png;
}

Image plot_losses(const LossSeries& s, int width, int height) {
  Image img(width, height, 255);
  Canvas cv(&img);
  const uint8_t black[3] = {0, 0, 0}, grid[3] = {225, 225, 225}, grey[3] = {90, 90, 90};
  const int left = 64, right = 16, top = 28, bottom = 40;
  const int pw = width - left - right, ph = height - top - bottom;

  // Data ranges over finite values only.
  double lo = INFINITY, hi = -INFINITY;
  int64_t last_step = 1;
  for (const auto* series : {&s.train, &s.val}) {
    for (const auto& [step, v] : *series) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      last_step = std::max(last_step, step);
    }
  }
  if (!(lo <= hi)) lo = 0, hi = 1;
  if (hi - lo < 1e-6) lo -= 0.5, hi += 0.5;
  const double pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const double x_max = static_cast<double>(std::max(s.max_steps, last_step));
  auto px = [&](double step) { return left + static_cast<int>(std::lround(step / x_max * (pw - 1))); };
  auto py = [&](double v) {
    return top + static_cast<int>(std::lround((hi - v) / (hi - lo) * (ph - 1)));
  };

  // Grid, ticks and labels.
  const double ys = nice_step(hi - lo, 6);
  for (double v = std::ceil(lo / ys) * ys; v <= hi; v += ys) {
    const int y = py(v);
    cv.line(left, y, left + pw - 1, y, grid);
    const std::string l = tick_label(v, ys);
    cv.text(left - 6 - Canvas::text_width(l), y - 3, l, black);
  }
  const double xs = nice_step(x_max, 8);
  for (double v = 0; v <= x_max + 1e-9; v += xs) {
    const int x = px(v);
    cv.line(x, top, x, top + ph - 1, grid);
    const std::string l = tick_label(v, xs);
    cv.text(x - Canvas::text_width(l) / 2, top + ph + 6, l, black);
  }
  cv.line(left, top, left, top + ph - 1, black);
  cv.line(left, top + ph - 1, left + pw - 1, top + ph - 1, black);
  cv.text(left + pw / 2 - 12, height - 14, "step", grey);
  cv.text(8, 8, "loss", grey);

  // Raw train loss, then its moving average on top, then validation.
  auto draw = [&](const std::vector<std::pair<int64_t, double>>& pts, const uint8_t c[3],
                  int thick, bool dots) {
    bool have = false;
    int x0 = 0, y0 = 0;
    for (const auto& [step, v] : pts) {
      if (!std::isfinite(v)) {
        have = false;
        continue;
      }
      const int x = px(static_cast<double>(step)), y = py(v);
      if (have) cv.line(x0, y0, x, y, c, thick);
      if (dots) cv.rect(x - 2, y - 2, x + 2, y + 2, c);
      x0 = x, y0 = y, have = true;
    }
  };
  draw(s.train, k_plot_raw_rgb, 1, false);
  // Smoothed: a centred moving average (no lag, unlike an EMA) whose half-width grows with
  // the run, so short runs are not over-smoothed and long ones are readable.
  std::vector<std::pair<int64_t, double>> pts;
  for (const auto& p : s.train) {
    if (std::isfinite(p.second)) pts.push_back(p);
  }
  const auto n = static_cast<int64_t>(pts.size());
  const int64_t half = std::min<int64_t>(200, n / 100);
  std::vector<double> prefix(static_cast<size_t>(n) + 1, 0.0);
  for (int64_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + pts[i].second;
  std::vector<std::pair<int64_t, double>> smooth;
  smooth.reserve(pts.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = std::max<int64_t>(0, i - half), b = std::min<int64_t>(n, i + half + 1);
    smooth.emplace_back(pts[i].first, (prefix[b] - prefix[a]) / static_cast<double>(b - a));
  }
  draw(smooth, k_plot_train_rgb, 2, false);
  draw(s.val, k_plot_val_rgb, 2, true);

  // Legend, top right.
  const int lx = left + pw - 150;
  cv.rect(lx, top + 8, lx + 16, top + 9, k_plot_train_rgb);
  cv.text(lx + 22, top + 5, "train loss", black);
  if (!s.val.empty()) {
    cv.rect(lx, top + 22, lx + 16, top + 23, k_plot_val_rgb);
    cv.text(lx + 22, top + 19, "val loss", black);
  }
  return img;
}

Status write_loss_plot(const std::string& path, const LossSeries& s) {
  return write_file_atomic(path, encode_png(plot_losses(s)));
}

}  // namespace slm::train
