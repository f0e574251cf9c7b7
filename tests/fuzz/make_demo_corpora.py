#!/usr/bin/python3
"""Writes the seed corpora of the demo readers' fuzz targets (tests/fuzz/<name>_corpus/):
safetensors, tar, cifar, image and demo_cli. Each seed is a tiny valid input or a broken one
(truncated, a bad field, a size that does not add up); the fuzzers mutate from there.

Run from anywhere with the system Python (needs Pillow for the images):
    /usr/bin/python3 tests/fuzz/make_demo_corpora.py
It rewrites the five folders; the output is deterministic except the JPEG encoder's version.
The seeds are committed: the tests do not run this script.
"""
import io
import json
import pathlib
import shutil
import struct
import tarfile

HERE = pathlib.Path(__file__).resolve().parent


def fresh(name):
    d = HERE / f"{name}_corpus"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    return d


def safetensors(header, data=b"", length=None):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def make_safetensors():
    d = fresh("safetensors")
    meta = {"format": "earlyexit", "architecture": json.dumps({"stages": [2, 3]})}
    w = struct.pack("<6f", *range(6))
    b = struct.pack("<3f", 0.5, -1.0, 2.0)
    seeds = {
        "valid_f32": safetensors({"__metadata__": meta, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
                                  "b": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}}, w + b),
        "valid_mixed": safetensors({
            "q": {"dtype": "I8", "shape": [2, 2], "data_offsets": [0, 4]},
            "s": {"dtype": "F32", "shape": [], "data_offsets": [4, 8]},
            "u": {"dtype": "U8", "shape": [3], "data_offsets": [8, 11]},
            "h": {"dtype": "F16", "shape": [1], "data_offsets": [11, 13]},
            "i": {"dtype": "I32", "shape": [1], "data_offsets": [13, 17]},
            "l": {"dtype": "I64", "shape": [1], "data_offsets": [17, 25]},
            "z": {"dtype": "F32", "shape": [0, 4], "data_offsets": [25, 25]},
        }, bytes(range(1, 26))),
        "metadata_only": safetensors({"__metadata__": {"format": "x", "json": "[1, {\"a\": 2}]", "bad": "{"}}),
        "empty_header": safetensors({}),
        "too_short": b"\x02\x00\x00",
        "header_too_long": safetensors({}, length=1 << 40),
        "not_json": struct.pack("<Q", 5) + b"{\"a\":",
        "offsets_outside": safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4),
        "size_mismatch": safetensors({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
        "overlap": safetensors({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                                "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, b"\0" * 6),
        "bad_dtype_shape": safetensors({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},
                                        "b": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 8),
        # 2^32 x 2^32 elements wrap to 0 in 64 bits: must not pass for an empty tensor.
        "shape_overflow": safetensors({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}),
    }
    for name, blob in seeds.items():
        (d / name).write_bytes(blob)


def tar_bytes(members, fmt):
    """members: (name, bytes) or (name, None) for a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        end = t.offset
    # The members and the two end-of-archive zero blocks, without tarfile's padding to 10 KiB.
    return buf.getvalue()[:end] + b"\0" * 1024


def tiny_png():
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 40)).save(out, "PNG")
    return out.getvalue()


def make_tar():
    d = fresh("tar")
    png = tiny_png()
    long_dir = "class_with_a_rather_long_folder_name_" + "x" * 70
    seeds = {
        "ustar_classes": tar_bytes([("cat", None), ("cat/a.png", png), ("dog/b.png", png), (".hidden", b"x")],
                                   tarfile.USTAR_FORMAT),
        "ustar_prefix": tar_bytes([(long_dir[:90] + "/img_0001.png", png)], tarfile.USTAR_FORMAT),
        "pax_long_name": tar_bytes([(long_dir + "/" + "y" * 40 + ".png", png), ("labels.txt", b"a.png 1\n")],
                                   tarfile.PAX_FORMAT),
        "gnu_longname": tar_bytes([(long_dir + "/z.png", png), ("./cls/flat.ppm", b"P6 1 1 255\n\1\2\3")],
                                  tarfile.GNU_FORMAT),
        "flat_unlabelled": tar_bytes([("a.ppm", b"P6 2 1 255\n\1\2\3\4\5\6"), ("b.png", png), ("notes.txt", b"hi")],
                                     tarfile.USTAR_FORMAT),
        "empty_archive": b"\0" * 1024,
    }
    good = seeds["ustar_classes"]
    seeds["truncated_member"] = good[:512 + 100]
    seeds["one_end_block"] = good[:-512]
    bad_sum = bytearray(good)
    bad_sum[0] ^= 0x01  # the checksum no longer matches
    seeds["bad_checksum"] = bytes(bad_sum)
    pax = bytearray(seeds["pax_long_name"])
    record = pax.find(b" path=")
    assert record > 0
    pax[record - 3: record] = b"999"  # a pax record length past the end of its data
    seeds["bad_pax_record"] = bytes(pax)
    nul = bytearray(seeds["pax_long_name"])
    nul[nul.find(b"yyyy.png")] = 0  # a NUL inside the pax path (fuzz_tar's first finding)
    seeds["pax_path_nul"] = bytes(nul)
    symlink = bytearray(good)
    symlink[156] = ord("2")  # a symbolic link: not supported
    symlink[148:156] = b"        "
    symlink[148:156] = b"%06o\0 " % sum(symlink[:512])  # its checksum again
    seeds["symlink"] = bytes(symlink)
    for name, blob in seeds.items():
        (d / name).write_bytes(blob)


def make_cifar():
    d = fresh("cifar")
    record = lambda label, seed: bytes([label]) + bytes((seed * 7 + i) % 256 for i in range(3072))
    (d / "one_record").write_bytes(record(3, 1))
    (d / "three_records").write_bytes(record(0, 2) + record(9, 3) + record(5, 4))
    (d / "bad_label").write_bytes(record(1, 5) + record(10, 6))
    (d / "truncated").write_bytes(record(2, 7) + record(4, 8)[:1000])
    (d / "header_only").write_bytes(b"\x07")


def make_image():
    from PIL import Image
    d = fresh("image")
    rgb = Image.new("RGB", (5, 3))
    rgb.putdata([(40 * x, 70 * y, 255 - 20 * (x + y)) for y in range(3) for x in range(5)])

    def save(name, im, fmt, **kw):
        out = io.BytesIO()
        im.save(out, fmt, **kw)
        (d / name).write_bytes(out.getvalue())
        return out.getvalue()

    png = save("rgb.png", rgb, "PNG")
    save("gray.png", rgb.convert("L"), "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    save("palette.png", rgb.convert("P"), "PNG")
    save("rgb.jpg", rgb.resize((16, 8)), "JPEG", quality=80)
    save("progressive.jpg", rgb.resize((16, 8)), "JPEG", quality=80, progressive=True)
    save("gray.jpg", rgb.convert("L").resize((8, 8)), "JPEG", quality=90)
    save("rgb.ppm", rgb, "PPM")
    save("rgb.bmp", rgb, "BMP")
    save("rgb.gif", rgb, "GIF")
    save("rgb.tga", rgb, "TGA")
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    # Headers that claim 60000 x 60000 pixels (10.8 GB as RGB): an error before any decode allocation.
    huge = bytearray(png)
    huge[16:24] = struct.pack(">II", 60000, 60000)  # IHDR width, height (stb_image does not check the CRC)
    (d / "huge.png").write_bytes(bytes(huge))
    (d / "huge.ppm").write_bytes(b"P6 60000 60000 255\n" + b"\0" * 30)
    jpg = bytearray((d / "rgb.jpg").read_bytes())
    sof = jpg.find(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    jpg[sof + 5: sof + 9] = struct.pack(">HH", 60000, 60000)
    (d / "huge.jpg").write_bytes(bytes(jpg))
    (d / "truncated.ppm").write_bytes(b"P6\n# cut\n4 4\n255\n" + bytes(range(20)))
    # fuzz_image's findings once stb_image was compiled into it (tests/test_common_image.cpp):
    # a Huffman table of 257 codes (stb_image wrote past its 256-entry tables) ...
    (d / "dht_257_codes.jpg").write_bytes(b"\xff\xd8\xff\xc4\x00\x14\x00" + bytes([255, 2] + [0] * 14) + b"\xff\xd9")
    # ... and a BMP whose 180 bytes claim 5 x 2097155 pixels (stb_image read the missing rows as zeros).
    bmp = bytearray((d / "rgb.bmp").read_bytes())
    bmp[18:26] = struct.pack("<ii", 5, 2097155)  # BITMAPINFOHEADER width, height
    (d / "bmp_claims_10m_pixels.bmp").write_bytes(bytes(bmp[:180]))
    # ... and a PNM width of 60 digits (stb_image's int overflowed reading it).
    (d / "pnm_width_overflow.ppm").write_bytes(b"P6" + b"4" * 60 + b"\n1 255\n")
    # ... and a 16-bit gray PNM (stb_image overflowed its buffer converting it to RGB).
    (d / "pnm_16_bit_gray.pgm").write_bytes(b"P5 3 6 355\n" + b"\x7f" * 36)


def make_demo_cli():
    d = fresh("demo_cli")
    lines = lambda *words: "\n".join(words).encode()
    seeds = {
        "empty": b"",
        "typical": lines("--limit", "100", "--policy", "max_prob,entropy,dee", "--max-loss", "1",
                         "--calibration-margin", "0.2"),
        "batched": lines("--batch", "8", "--threads", "2", "--throughput-samples", "500", "--throughput-batches",
                         "1,8,64", "--throughput-threads", "1,2"),
        "record": lines("--record-only", "--record-trace", "/tmp/val_trace", "--backend", "eigen", "--precision", "fp32"),
        "dvfs": lines("--dvfs", "cpufreq", "--deadline-ms", "2.5", "--dvfs-table", "data/dvfs/x.json", "--json",
                      "out.json", "--plots", "plots"),
        "nul_split": b"\0".join([b"--calibration-confidence=0.9", b"--max-loss=0.5", b"--calibration", b"val",
                                 b"--torch-json", b"t.json"]),
        "help": lines("--help"),
        "batch_zero": lines("--batch", "0"),
        "margin_over": lines("--calibration-margin", "2", "--max-loss", "1"),
        "unknown_policy": lines("--policy", "max_prob,nope"),
        "bf16_eigen": lines("--precision", "bf16", "--backend", "eigen"),
        "bad_values": lines("--limit", "-1", "--unknown", "x"),
        "nan_loss": lines("--max-loss", "nan"),
        "nan_deadline": lines("--deadline-ms", "nan", "--calibration-margin", "nan"),
    }
    for name, blob in seeds.items():
        (d / name).write_bytes(blob)


if __name__ == "__main__":
    make_safetensors()
    make_tar()
    make_cifar()
    make_image()
    make_demo_cli()
