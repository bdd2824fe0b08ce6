// The obviously-correct evaluator: node by node, in double precision, one full array per node.
// Slow and memory-hungry on purpose; it exists so tests can check the fused kernels against it.
namespace PrunerZero.Kernels;

public static class ReferenceScorer
{
    /// <summary>Scores as doubles, (R, K) row-major. Same argument rules as the fused path.</summary>
    public static double[] Score(Expr e, ReadOnlySpan<float> weight, ReadOnlySpan<float> g, ReadOnlySpan<float> x, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(e);
        ScoreArgs.Check(e, weight.Length, g.Length, x.Length, rows, cols, rows * cols);
        return Eval(e, weight.ToArray(), g.ToArray(), x.ToArray(), rows, cols);
    }

    static double[] Eval(Expr e, float[] w, float[] g, float[] x, int rows, int cols)
    {
        int n = rows * cols;
        var r = new double[n];
        switch (e.Op)
        {
            case Op.W: for (int i = 0; i < n; i++) r[i] = Math.Abs((double)w[i]); return r;
            case Op.G: for (int i = 0; i < n; i++) r[i] = g[i]; return r;
            case Op.X: for (int i = 0; i < n; i++) r[i] = x[i % cols]; return r;
        }
        var a = Eval(e.Children[0], w, g, x, rows, cols);
        if (Ops.Arity(e.Op) == 1)
        {
            switch (e.Op)
            {
                case Op.Sqr or Op.Pow: for (int i = 0; i < n; i++) r[i] = a[i] * a[i]; break;
                case Op.Neg: for (int i = 0; i < n; i++) r[i] = -a[i]; break;
                case Op.Abs: for (int i = 0; i < n; i++) r[i] = Math.Abs(a[i]); break;
                case Op.Tanh: for (int i = 0; i < n; i++) r[i] = Math.Tanh(a[i]); break;
                case Op.Skp: Array.Copy(a, r, n); break;
                case Op.Log: for (int i = 0; i < n; i++) r[i] = Math.Log(Math.Abs(a[i]) + 0.001); break;
                case Op.Sqrt: for (int i = 0; i < n; i++) r[i] = Math.Sqrt(Math.Abs(a[i])); break;
                case Op.Exp: for (int i = 0; i < n; i++) r[i] = Math.Exp(Math.Min(a[i], 100)); break;
                case Op.Mms:
                {
                    double min = double.PositiveInfinity, max = double.NegativeInfinity;
                    foreach (var v in a) { min = Math.Min(min, v); max = Math.Max(max, v); }
                    double range = max - min;
                    for (int i = 0; i < n; i++) r[i] = range == 0 ? 0 : (a[i] - min) / range;
                    break;
                }
                case Op.Zsn:
                {
                    double mean = a.Sum() / n, ss = 0;
                    foreach (var v in a) ss += (v - mean) * (v - mean);
                    double std = Math.Sqrt(ss / n); // population std
                    for (int i = 0; i < n; i++) r[i] = std == 0 ? 0 : (a[i] - mean) / std;
                    break;
                }
                default: throw new InvalidOperationException($"unhandled unary {e.Op}");
            }
            return r;
        }
        var b = Eval(e.Children[1], w, g, x, rows, cols);
        switch (e.Op)
        {
            case Op.Add: for (int i = 0; i < n; i++) r[i] = a[i] + b[i]; break;
            case Op.Sub: for (int i = 0; i < n; i++) r[i] = a[i] - b[i]; break;
            case Op.Mul: for (int i = 0; i < n; i++) r[i] = a[i] * b[i]; break;
            case Op.Div:
            {
                double ss = 0;
                foreach (var v in b) ss += v * v;
                double norm = Math.Sqrt(ss);
                for (int i = 0; i < n; i++) r[i] = norm == 0 ? a[i] : a[i] / norm;
                break;
            }
            case Op.PDiv: for (int i = 0; i < n; i++) r[i] = Math.Abs(b[i]) < 1e-12 ? a[i] : a[i] / b[i]; break;
            default: throw new InvalidOperationException($"unhandled binary {e.Op}");
        }
        return r;
    }

    /// <summary>
    /// Reference unstructured mask by full sort of (score, column) per row: NaN lowest, −0 == +0,
    /// ties to the lower column. Obviously correct, O(K log K) per row.
    /// </summary>
    public static byte[] MaskUnstructured(double[] scores, int rows, int cols, double sparsity)
    {
        int k = Masks.PrunedPerRow(cols, sparsity);
        var prune = new byte[rows * cols];
        var idx = new int[cols];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++) idx[c] = c;
            int off = r * cols;
            Array.Sort(idx, (i, j) => Compare(scores[off + i], i, scores[off + j], j));
            for (int t = 0; t < k; t++) prune[off + idx[t]] = 1;
        }
        return prune;
    }

    /// <summary>Reference N:M mask: in each group of m columns, the n lowest by the same order.</summary>
    public static byte[] MaskNM(double[] scores, int rows, int cols, int n, int m)
    {
        Masks.CheckNM(rows * cols, rows, cols, n, m, rows * cols);
        var prune = new byte[rows * cols];
        for (int gi = 0; gi < rows * cols / m; gi++)
        {
            int b = gi * m;
            var idx = Enumerable.Range(0, m).ToArray();
            Array.Sort(idx, (i, j) => Compare(scores[b + i], i, scores[b + j], j));
            for (int t = 0; t < n; t++) prune[b + idx[t]] = 1;
        }
        return prune;
    }

    static int Compare(double a, int ia, double b, int ib)
    {
        bool na = double.IsNaN(a), nb = double.IsNaN(b);
        int c = na && nb ? 0 : na ? -1 : nb ? 1 : a < b ? -1 : a > b ? 1 : 0; // -0 == +0 here
        return c != 0 ? c : ia.CompareTo(ib);
    }
}
