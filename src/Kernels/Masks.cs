// Per-row selection of the weights to prune, from scores (R, K) row-major; prune[i] = 1 means zero it.
// Order: scores are ranked by an order-preserving uint32 key of the float (−0 mapped to +0, every NaN
// mapped to the lowest key, so NaN scores are pruned first); among equal keys the lower column index
// ranks lower (is pruned first). Masks are therefore fully deterministic.
using System.Runtime.CompilerServices;

namespace PrunerZero.Kernels;

public static class Masks
{
    /// <summary>k = floor(cols·sparsity), computed in double exactly as Python's int(cols * sparsity).</summary>
    public static int PrunedPerRow(int cols, double sparsity)
    {
        if (!(sparsity >= 0 && sparsity <= 1))
            throw new ArgumentOutOfRangeException(nameof(sparsity), $"sparsity must be in [0, 1], got {sparsity}");
        return (int)Math.Floor(cols * sparsity);
    }

    /// <summary>Order-preserving key: a &lt; b (as floats, NaN lowest, −0 == +0) ⇔ Key(a) &lt; Key(b).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Key(float f)
    {
        if (float.IsNaN(f)) return 0;
        uint b = BitConverter.SingleToUInt32Bits(f);
        if (b == 0x8000_0000u) b = 0; // −0 → +0
        return (b & 0x8000_0000u) != 0 ? ~b : b | 0x8000_0000u;
    }

    /// <summary>
    /// In each row, prune exactly k = floor(cols·sparsity) lowest scores (ties: lower column first).
    /// Radix select on the key (11 + 11 + 10 bits, three histogram passes), no sort. Parallel over rows.
    /// </summary>
    public static unsafe void Unstructured(ReadOnlySpan<float> scores, int rows, int cols, double sparsity, Span<byte> prune)
    {
        CheckShape(scores.Length, rows, cols, prune.Length);
        int k = PrunedPerRow(cols, sparsity);
        fixed (float* ps = scores)
        fixed (byte* pp = prune)
        {
            nint s = (nint)ps, p = (nint)pp;
            int rpc = Math.Max(1, (1 << 14) / cols);
            int chunks = (rows + rpc - 1) / rpc;
            Parallel.For(0, chunks, () => (new uint[cols], new int[2048]), (ci, _, scratch) =>
            {
                int r1 = Math.Min(rows, (ci + 1) * rpc);
                for (int r = ci * rpc; r < r1; r++)
                {
                    long off = (long)r * cols;
                    SelectRow((float*)s + off, (byte*)p + off, cols, k, scratch.Item1, scratch.Item2);
                }
                return scratch;
            }, _ => { });
        }
    }

    static unsafe void SelectRow(float* s, byte* p, int cols, int k, uint[] keys, int[] hist)
    {
        if (k == 0) { new Span<byte>(p, cols).Clear(); return; }
        if (k == cols) { new Span<byte>(p, cols).Fill(1); return; }
        for (int c = 0; c < cols; c++) keys[c] = Key(s[c]);

        // Find T = the key of rank k-1, digit by digit from the top; `target` ends as the rank of the
        // k-th element among the elements whose key equals T.
        uint prefix = 0, mask = 0;
        int target = k - 1;
        ReadOnlySpan<(int Shift, int Bits)> passes = [(21, 11), (10, 11), (0, 10)];
        foreach (var (shift, bits) in passes)
        {
            int nb = 1 << bits;
            Array.Clear(hist, 0, nb);
            for (int c = 0; c < cols; c++)
            {
                uint key = keys[c];
                if ((key & mask) == prefix) hist[(key >> shift) & (uint)(nb - 1)]++;
            }
            int b = 0;
            while (target >= hist[b]) { target -= hist[b]; b++; }
            prefix |= (uint)b << shift;
            mask |= (uint)(nb - 1) << shift;
        }
        uint t = prefix;
        int ties = target + 1; // elements equal to T that are pruned, taken in column order
        for (int c = 0; c < cols; c++)
        {
            uint key = keys[c];
            byte v = 0;
            if (key < t) v = 1;
            else if (key == t && ties > 0) { v = 1; ties--; }
            p[c] = v;
        }
    }

    /// <summary>
    /// N:M: in each group of m consecutive input columns of a row, prune the n lowest (ties: lower column first).
    /// </summary>
    public static unsafe void NM(ReadOnlySpan<float> scores, int rows, int cols, int n, int m, Span<byte> prune)
    {
        CheckNM(scores.Length, rows, cols, n, m, prune.Length);
        fixed (float* ps = scores)
        fixed (byte* pp = prune)
        {
            nint s = (nint)ps, p = (nint)pp;
            int groups = rows * (cols / m);
            int gpc = Math.Max(1, (1 << 14) / m);
            int chunks = (groups + gpc - 1) / gpc;
            Parallel.For(0, chunks, ci =>
            {
                int g1 = Math.Min(groups, (ci + 1) * gpc);
                for (int gi = ci * gpc; gi < g1; gi++)
                    SelectGroup((float*)s + (long)gi * m, (byte*)p + (long)gi * m, n, m);
            });
        }
    }

    /// <summary>Rank of j = #{e : key_e &lt; key_j or (key_e == key_j and e &lt; j)}; prune if rank &lt; n. O(m²), m is small.</summary>
    internal static unsafe void SelectGroup(float* s, byte* p, int n, int m)
    {
        Span<uint> keys = m <= 256 ? stackalloc uint[m] : new uint[m];
        for (int j = 0; j < m; j++) keys[j] = Key(s[j]);
        for (int j = 0; j < m; j++)
        {
            uint kj = keys[j];
            int rank = 0;
            for (int e = 0; e < m; e++)
            {
                uint ke = keys[e];
                if (ke < kj || (ke == kj && e < j)) rank++;
            }
            p[j] = rank < n ? (byte)1 : (byte)0;
        }
    }

    internal static void CheckShape(int scoresLen, int rows, int cols, int pruneLen)
    {
        if (rows <= 0 || cols <= 0)
            throw new ArgumentException($"matrix shape must be positive, got ({rows}, {cols})");
        if ((long)rows * cols != scoresLen)
            throw new ArgumentException($"scores has {scoresLen} elements, expected rows*cols = {rows}*{cols} = {(long)rows * cols}");
        if (pruneLen != scoresLen)
            throw new ArgumentException($"prune mask has {pruneLen} elements, expected {scoresLen}");
    }

    internal static void CheckNM(int scoresLen, int rows, int cols, int n, int m, int pruneLen)
    {
        CheckShape(scoresLen, rows, cols, pruneLen);
        if (m <= 0 || n < 0 || n > m)
            throw new ArgumentException($"N:M needs 0 <= n <= m and m > 0, got {n}:{m}");
        if (cols % m != 0)
            throw new ArgumentException($"N:M {n}:{m} needs the number of input columns ({cols}) to be a multiple of m = {m}");
    }
}
