# Independent safetensors reference for test_safetensors (only json + struct, no safetensors
# package): `write DIR` writes DIR/indep.safetensors, `dump FILE` reads any file; both print
# every tensor as "tensor NAME DTYPE SHAPE(csv or -) v1 v2 ..." with values as floats.
import json
import random
import struct
import sys

SIZES = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1,
         'U8': 1, 'BOOL': 1}
FMT = {'F64': 'd', 'F32': 'f', 'F16': 'e', 'I64': 'q', 'I32': 'i', 'I16': 'h', 'I8': 'b',
       'U8': 'B', 'BOOL': '?'}


def decode(dtype, raw):
    if dtype == 'BF16':
        # bfloat16 is the upper half of a float32
        n = len(raw) // 2
        return [struct.unpack('<f', b'\0\0' + raw[2 * i:2 * i + 2])[0] for i in range(n)]
    n = len(raw) // SIZES[dtype]
    return [float(v) for v in struct.unpack('<%d%s' % (n, FMT[dtype]), raw)]


def encode(dtype, values):
    if dtype == 'BF16':
        out = b''
        for v in values:
            out += struct.pack('<f', v)[2:4]
        return out
    return struct.pack('<%d%s' % (len(values), FMT[dtype]), *values)


def show(name, dtype, shape, values):
    sh = ','.join(str(s) for s in shape) if shape else '-'
    print('tensor %s %s %s %s' % (name, dtype, sh, ' '.join('%.9g' % v for v in values)))


def count(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def write(d):
    rng = random.Random(7)
    specs = [
        ('a.weight', 'F32', [3, 5]),
        ('b', 'F16', [2, 3, 4]),
        ('c.bf16', 'BF16', [7]),
        ('scalar', 'F32', []),
        ('empty', 'F32', [0, 4]),
        ('ids', 'I32', [4]),
        ('x5d', 'F32', [1, 2, 1, 2, 1]),
        ('mask', 'BOOL', [3]),
    ]
    blobs = {}
    for name, dtype, shape in specs:
        n = count(shape)
        if dtype == 'I32':
            vals = [rng.randint(-1000, 1000) for _ in range(n)]
        elif dtype == 'BOOL':
            vals = [rng.random() < 0.5 for _ in range(n)]
        elif dtype == 'BF16':
            # values exactly representable in bfloat16
            vals = [struct.unpack('<f', b'\0\0' + struct.pack('<f', rng.uniform(-4, 4))[2:4])[0]
                    for _ in range(n)]
        else:
            vals = [rng.uniform(-4, 4) for _ in range(n)]
        blobs[name] = (dtype, shape, encode(dtype, vals))
    # Data in a different order from the header, and no header padding, so views are unaligned.
    order = ['mask', 'c.bf16', 'a.weight', 'empty', 'ids', 'x5d', 'b', 'scalar']
    header = {'__metadata__': {'format': 'pt', 'note': 'h\u00e9llo'}}
    data = b''
    offsets = {}
    for name in order:
        offsets[name] = (len(data), len(data) + len(blobs[name][2]))
        data += blobs[name][2]
    for name, dtype, shape in specs:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': list(offsets[name])}
    text = json.dumps(header).encode('utf-8')
    if (8 + len(text)) % 8 == 0:
        text += b' '
    with open(d + '/indep.safetensors', 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        f.write(data)
    print('metadata format pt')
    print('metadata note h\u00e9llo')
    for name, dtype, shape in specs:
        show(name, dtype, shape, decode(dtype, blobs[name][2]))


def dump(path):
    raw = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n].decode('utf-8'))
    base = 8 + n
    print('aligned %d' % (1 if base % 8 == 0 else 0))
    for k, v in header.get('__metadata__', {}).items():
        print('metadata %s %s' % (k, v))
    end = 0
    for name, info in header.items():
        if name == '__metadata__':
            continue
        b, e = info['data_offsets']
        assert e - b == count(info['shape']) * SIZES[info['dtype']]
        end = max(end, e)
        show(name, info['dtype'], info['shape'], decode(info['dtype'], raw[base + b:base + e]))
    assert base + end == len(raw)


if __name__ == '__main__':
    if sys.argv[1] == 'write':
        write(sys.argv[2])
    else:
        dump(sys.argv[2])
