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
    /// Radix select on the key, 8 bits a pass from the top, no sort; after each pass only the keys in the
    /// bucket holding rank k go on (gathered into a scratch array), so later passes touch few elements.
    /// Parallel over rows.
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
            Parallel.For(0, chunks, () => new RowScratch(cols), (ci, _, scratch) =>
            {
                int r1 = Math.Min(rows, (ci + 1) * rpc);
                for (int r = ci * rpc; r < r1; r++)
                {
                    long off = (long)r * cols;
                    SelectRow((float*)s + off, (byte*)p + off, cols, k, scratch);
                }
                return scratch;
            }, _ => { });
        }
    }

    sealed class RowScratch(int cols)
    {
        public readonly uint[] Keys = new uint[cols];
        public readonly uint[] Candidates = new uint[cols];
        // Four interleaved histograms: consecutive equal digits (common: scores of a row share exponents)
        // then increment different counters instead of waiting on one.
        public readonly int[] Hist = new int[4 * 256];
    }

    static unsafe void SelectRow(float* s, byte* p, int cols, int k, RowScratch scratch)
    {
        if (k == 0) { new Span<byte>(p, cols).Clear(); return; }
        if (k == cols) { new Span<byte>(p, cols).Fill(1); return; }
        uint[] keys = scratch.Keys, cand = scratch.Candidates;
        int[] hist = scratch.Hist;
        for (int c = 0; c < cols; c++) keys[c] = Key(s[c]);

        // T = the key of rank k-1, found digit by digit from the top; `target` ends as the rank, among the
        // elements whose key equals T, of the last one pruned.
        int target = k - 1;
        uint[] src = keys;
        int n = cols;
        uint t = 0;
        for (int shift = 24; shift >= 0; shift -= 8)
        {
            Array.Clear(hist);
            int i = 0;
            for (; i + 4 <= n; i += 4)
            {
                hist[(int)((src[i] >> shift) & 0xFF)]++;
                hist[256 + (int)((src[i + 1] >> shift) & 0xFF)]++;
                hist[512 + (int)((src[i + 2] >> shift) & 0xFF)]++;
                hist[768 + (int)((src[i + 3] >> shift) & 0xFF)]++;
            }
            for (; i < n; i++) hist[(int)((src[i] >> shift) & 0xFF)]++;
            int b = 0;
            for (; ; b++)
            {
                int count = hist[b] + hist[256 + b] + hist[512 + b] + hist[768 + b];
                if (target < count) break;
                target -= count;
            }
            t |= (uint)b << shift;
            if (shift == 0) break;
            // Keep only the keys in bucket b (they all share the digits found so far).
            int m = 0;
            for (int j = 0; j < n; j++)
            {
                uint key = src[j];
                cand[m] = key;
                m += ((key >> shift) & 0xFF) == (uint)b ? 1 : 0;
            }
            src = cand;
            n = m;
        }
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
