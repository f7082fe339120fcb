import hashlib
import zlib


def checksum(text, algorithm):
    """Digest the UTF-8 bytes; crc32 is zero-padded to 8 hex digits."""
    data = text.encode("utf-8")
    if algorithm == "crc32":
        return format(zlib.crc32(data) & 0xFFFFFFFF, "08x")
    return hashlib.new(algorithm, data).hexdigest()
