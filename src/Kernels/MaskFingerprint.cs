using System.Buffers.Binary;
using System.Security.Cryptography;

namespace PrunerZero.Kernels;

/// <summary>
/// The one fingerprint of a pruned model's masks: SHA-256 over its layers in order, each as its shape (rows, cols,
/// little-endian int32) and its prune bits (1 = pruned) packed 8 to a byte, row-major, bit i % 8 of byte i / 8.
/// Equal fingerprints mean the same weights pruned, so a search can take an earlier candidate's fitness.
/// </summary>
public sealed class MaskFingerprint : IDisposable
{
    public const string Method = "SHA-256 of the packed prune bits of every linear";

    readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    readonly byte[] _shape = new byte[8];
    byte[] _packed = [];

    /// <summary>Adds one layer's mask (rows × cols bytes, nonzero = pruned).</summary>
    public void Add(ReadOnlySpan<byte> prune, int rows, int cols)
    {
        int n = rows * cols;
        if (prune.Length < n) throw new ArgumentException($"mask has {prune.Length} entries, shape {rows}×{cols} needs {n}", nameof(prune));
        int bytes = (n + 7) / 8;
        if (_packed.Length < bytes) _packed = new byte[bytes];
        Array.Clear(_packed, 0, bytes);
        for (int j = 0; j < n; j++) if (prune[j] != 0) _packed[j >> 3] |= (byte)(1 << (j & 7));
        BinaryPrimitives.WriteInt32LittleEndian(_shape, rows);
        BinaryPrimitives.WriteInt32LittleEndian(_shape.AsSpan(4), cols);
        _hash.AppendData(_shape);
        _hash.AppendData(_packed, 0, bytes);
    }

    /// <summary>The fingerprint (lower-case hex) of the layers added so far; the hash starts afresh.</summary>
    public string Finish() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    public void Dispose() => _hash.Dispose();
}
