// The loss plot's PNG, decoded by an independent reader (Python's zlib and struct): signature,
// chunk CRCs, IHDR, the zlib stream (inflate and Adler-32), scanline filters undone as the PNG
// specification defines them, and the drawn curves (a falling train loss must be drawn
// falling; validation points in their colour).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "test_util.h"
#include "train/plot.h"

namespace slm::train {
namespace {

// Decodes a PNG with zlib + struct only and prints facts about it as "key value" lines.
const char* k_decoder = R"PY(
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'signature'
pos, chunks = 8, []
while pos < len(data):
    n, = struct.unpack('>I', data[pos:pos+4]); typ = data[pos+4:pos+8]; body = data[pos+8:pos+8+n]
    crc, = struct.unpack('>I', data[pos+8+n:pos+12+n])
    assert zlib.crc32(typ + body) & 0xffffffff == crc, 'crc of ' + typ.decode()
    chunks.append((typ, body)); pos += 12 + n
assert chunks[0][0] == b'IHDR' and chunks[-1][0] == b'IEND', [c[0] for c in chunks]
w, h, depth, ctype, comp, filt, inter = struct.unpack('>IIBBBBB', chunks[0][1])
raw = zlib.decompress(b''.join(b for t, b in chunks if t == b'IDAT'))  # checks Adler-32
assert len(raw) == h * (1 + 3 * w), 'scanline bytes'
rows, prev = [], bytes(3 * w)
for y in range(h):
    line = raw[y * (1 + 3 * w): (y + 1) * (1 + 3 * w)]
    f, cur = line[0], bytearray(line[1:])
    assert f in (0, 1, 2), 'filter %d' % f   # the encoder uses None, Sub, Up
    for i in range(3 * w):
        if f == 1 and i >= 3: cur[i] = (cur[i] + cur[i - 3]) & 255
        if f == 2: cur[i] = (cur[i] + prev[i]) & 255
    rows.append(bytes(cur)); prev = cur
def pixels(rgb):
    out = []
    for y in range(h):
        r = rows[y]
        for x in range(w):
            if tuple(r[3*x:3*x+3]) == rgb: out.append((x, y))
    return out
print('size', w, h, depth, ctype, comp, filt, inter)
train = pixels(tuple(int(v) for v in sys.argv[2].split(',')))
val = pixels(tuple(int(v) for v in sys.argv[3].split(',')))
# Mean y of the train colour per column over the left 60% of the image (the legend is right).
cols = {}
for x, y in train:
    if x < 0.6 * w: cols.setdefault(x, []).append(y)
ys = [sum(v) / len(v) for x, v in sorted(cols.items())]
falls = all(b >= a - 2 for a, b in zip(ys, ys[1:]))
print('train_pixels', len(train), 'train_columns', len(cols), 'monotone_down', int(falls))
print('val_pixels', len(val))
)PY";

std::string rgb_arg(const uint8_t c[3]) {
  return std::to_string(c[0]) + "," + std::to_string(c[1]) + "," + std::to_string(c[2]);
}

TEST(TrainPlot, PngDecodesWithZlibAndShowsTheCurves) {
  LossSeries s;
  s.max_steps = 400;
  for (int64_t i = 1; i <= 300; ++i) {
    s.train.emplace_back(i, 2.0 + 6.0 * std::exp(-static_cast<double>(i) / 60.0));
  }
  for (int64_t i = 50; i <= 300; i += 50) {
    s.val.emplace_back(i, 2.2 + 6.0 * std::exp(-static_cast<double>(i) / 60.0));
  }
  s.train.emplace_back(301, NAN);  // skipped, not drawn
  test::TempDir tmp;
  const std::string png = tmp.file("loss.png");
  ASSERT_TRUE(write_loss_plot(png, s).ok());
  test::write_text(tmp.file("decode.py"), k_decoder);
  test::RunResult r = test::run(test::python_exe() + " " + test::sh_quote(tmp.file("decode.py")) +
                                " " + test::sh_quote(png) + " " + rgb_arg(k_plot_train_rgb) + " " +
                                rgb_arg(k_plot_val_rgb));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("size 800 480 8 2 0 0 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("monotone_down 1"), std::string::npos) << r.out;
  // The curve spans the x range of its steps: 300 of 400 steps over ~720 plot pixels, of
  // which the test looks at the left 60% of the image.
  int train_columns = 0, val_pixels = 0;
  const size_t tc = r.out.find("train_columns ");
  ASSERT_NE(tc, std::string::npos);
  train_columns = std::stoi(r.out.substr(tc + 14));
  const size_t vp = r.out.find("val_pixels ");
  ASSERT_NE(vp, std::string::npos);
  val_pixels = std::stoi(r.out.substr(vp + 11));
  EXPECT_GT(train_columns, 400) << r.out;
  EXPECT_GT(val_pixels, 6 * 25) << r.out;  // six 5x5 dots at least
  // The deflate stream compresses: far below the 1.15 MB of raw scanlines.
  EXPECT_LT(test::read_text(png).size(), 150000u);
}

TEST(TrainPlot, EmptyAndSinglePointSeriesGiveValidImages) {
  for (int n : {0, 1}) {
    LossSeries s;
    if (n) s.train.emplace_back(1, 5.0);
    test::TempDir tmp;
    const std::string png = tmp.file("p.png");
    ASSERT_TRUE(write_loss_plot(png, s).ok());
    test::write_text(tmp.file("decode.py"), k_decoder);
    test::RunResult r = test::run(test::python_exe() + " " + test::sh_quote(tmp.file("decode.py")) +
                                  " " + test::sh_quote(png) + " 1,2,3 4,5,6");
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
}

TEST(TrainPlot, Crc32MatchesTheStandardCheckValue) {
  // The CRC-32 check value from the CRC catalogue: crc32("123456789") = 0xCBF43926.
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("6789", 4, crc32("12345", 5)), 0xCBF43926u);
}

}  // namespace
}  // namespace slm::train
