// Per-row selection of the weights to prune, from scores (R, K) row-major; prune[i] = 1 means zero it.
// Order: scores are ranked by an order-preserving uint32 key of the float (−0 mapped to +0, every NaN
// mapped to the lowest key, so NaN scores are pruned first); among equal keys the lower column index
// ranks lower (is pruned first). Masks are therefore fully deterministic.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
    /// Radix select on the key, no sort: a vectorised pass turns scores into keys, then an 11-bit histogram
    /// of their top digit is built; only the keys in the bucket holding rank k go on (with their columns, in
    /// column order), so the later digits touch a few percent of the row; a last vectorised pass writes the
    /// mask. Parallel over rows.
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

    const int DigitBits = 11;
    const int Bins = 1 << DigitBits;

    sealed class RowScratch(int cols)
    {
        public readonly uint[] Keys = new uint[cols];
        public readonly uint[] CandKeys = new uint[cols];
        public readonly int[] CandCols = new int[cols];
        public readonly int[] Hist = new int[Bins];
    }

    /// <summary>Vector form of <see cref="Key"/>: NaN → 0, −0 → +0, then flip so unsigned order = float order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static Vector256<uint> Keys(Vector256<float> f)
    {
        var b = f.AsUInt32();
        var signBit = Vector256.Create(0x8000_0000u);
        b = Vector256.AndNot(b, Vector256.Equals(b, signBit));                  // −0 → +0
        var neg = Vector256.ShiftRightArithmetic(b.AsInt32(), 31).AsUInt32();  // all ones where negative
        var key = b ^ (neg | signBit);
        return Vector256.AndNot(key, ~Vector256.Equals(f, f).AsUInt32());     // NaN → 0
    }

    static unsafe void SelectRow(float* s, byte* p, int cols, int k, RowScratch scratch)
    {
        if (k == 0) { new Span<byte>(p, cols).Clear(); return; }
        if (k == cols) { new Span<byte>(p, cols).Fill(1); return; }
        int[] hist = scratch.Hist;
        uint[] ck = scratch.CandKeys;
        int[] cc = scratch.CandCols;
        const int top = 32 - DigitBits;
        fixed (uint* pk = scratch.Keys)
        {
            // Pass 1: keys, then the histogram of their top digit.
            int c = 0;
            for (; c + 8 <= cols; c += 8) Keys(Vector256.Load(s + c)).Store(pk + c);
            for (; c < cols; c++) pk[c] = Key(s[c]);
            Array.Clear(hist);
            for (c = 0; c < cols; c++) hist[(int)(pk[c] >> top)]++;

            // T = the key of rank k-1, found digit by digit from the top; `target` ends as the rank, among the
            // elements whose key equals T, of the last one pruned.
            int target = k - 1;
            int b = Bucket(hist, ref target);
            uint t = (uint)b << top;

            // Pass 2: gather the keys of bucket b with their columns (vectorised scan; most blocks hold none).
            int n = 0;
            var want = Vector256.Create((uint)b);
            for (c = 0; c + 8 <= cols; c += 8)
            {
                uint bits = Vector256.Equals(Vector256.ShiftRightLogical(Vector256.Load(pk + c), top), want).ExtractMostSignificantBits();
                while (bits != 0)
                {
                    int j = c + System.Numerics.BitOperations.TrailingZeroCount(bits);
                    ck[n] = pk[j]; cc[n] = j; n++;
                    bits &= bits - 1;
                }
            }
            for (; c < cols; c++) if (pk[c] >> top == (uint)b) { ck[n] = pk[c]; cc[n] = c; n++; }

            // Remaining digits (bits 20..10, then 9..0) on the candidates only; gathering keeps column order.
            for (int hi = top; hi > 0;)
            {
                int shift = Math.Max(0, hi - DigitBits);
                uint digitMask = (1u << (hi - shift)) - 1;
                Array.Clear(hist, 0, (int)digitMask + 1);
                for (int i = 0; i < n; i++) hist[(int)((ck[i] >> shift) & digitMask)]++;
                int d = Bucket(hist, ref target);
                t |= (uint)d << shift;
                int m = 0;
                for (int i = 0; i < n; i++)
                {
                    uint key = ck[i];
                    int col = cc[i];
                    ck[m] = key; cc[m] = col;
                    m += ((key >> shift) & digitMask) == (uint)d ? 1 : 0;
                }
                n = m;
                hi = shift;
            }

            // Pass 3: prune every key below T (vectorised), then the first target+1 columns whose key equals T.
            var tv = Vector256.Create(t);
            var one = Vector256.Create((byte)1);
            for (c = 0; c + 32 <= cols; c += 32)
            {
                var l0 = Vector256.LessThan(Vector256.Load(pk + c), tv);
                var l1 = Vector256.LessThan(Vector256.Load(pk + c + 8), tv);
                var l2 = Vector256.LessThan(Vector256.Load(pk + c + 16), tv);
                var l3 = Vector256.LessThan(Vector256.Load(pk + c + 24), tv);
                (Vector256.Narrow(Vector256.Narrow(l0, l1), Vector256.Narrow(l2, l3)) & one).Store(p + c);
            }
            for (; c < cols; c++) p[c] = pk[c] < t ? (byte)1 : (byte)0;
            for (int i = 0; i <= target; i++) p[cc[i]] = 1; // the candidates left all have key T, in column order
        }
    }

    /// <summary>The bucket holding rank `target` in the histogram; `target` becomes the rank inside it.</summary>
    static int Bucket(int[] hist, ref int target)
    {
        int b = 0;
        for (; ; b++)
        {
            int count = hist[b];
            if (target < count) return b;
            target -= count;
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
