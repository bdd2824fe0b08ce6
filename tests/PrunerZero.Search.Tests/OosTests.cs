// OOS must only apply identities of the protected primitives. The property test scores thousands of
// random trees (biased towards the patterns the rules match) with the double ReferenceScorer, before
// and after Simplify, on inputs with negative weights, zeros and degenerate (constant) operands.
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Search.Tests;

public class OosTests(Xunit.Abstractions.ITestOutputHelper output)
{
    static Expr P(string s) => MetricParser.Parse(s);
    static string C(string s) => Oos.Canonical(P(s));

    [Theory]
    [InlineData("add(G, W)", "add(W, G)")]
    [InlineData("mul(sqrt(X), W)", "mul(W, sqrt(X))")]
    [InlineData("mul(mms(G), pow(W))", "mul(sqr(W), mms(G))")]
    [InlineData("sqrt(sqr(G))", "G")]
    [InlineData("skp(sqrt(pow(abs(W))))", "abs(W)")]
    [InlineData("neg(neg(zsn(G)))", "zsn(G)")]
    [InlineData("add(W, sub(G, G))", "W")]
    [InlineData("mul(neg(W), neg(G))", "mul(G, W)")]
    [InlineData("sub(W, neg(G))", "add(G, W)")]
    [InlineData("mms(div(mms(G), X))", "mms(G)")]
    [InlineData("zsn(neg(X))", "neg(zsn(X))")]
    public void Equivalent_candidates_share_one_canonical_form(string a, string b) => Assert.Equal(C(a), C(b));

    [Theory]
    [InlineData("log(exp(W))")]   // log(exp(x) + 0.001) != x: not an identity under protected log
    [InlineData("exp(log(W))")]   // = |x| + 0.001: not expressible
    [InlineData("abs(log(W))")]   // log can be negative
    [InlineData("mms(neg(G))")]   // = 1 - mms(G), not mms(G)
    [InlineData("pdiv(W, neg(G))")] // |G| < eps gives W, not -W
    [InlineData("sqrt(sqrt(X))")]
    public void Non_identities_are_left_alone(string s) => Assert.Equal(P(s).ToString(), C(s));

    [Fact]
    public void Pruner_zero_canonical_form_orders_commutative_operands()
    {
        Assert.Equal("mul(mms(G), sqr(W))", Oos.Canonical(Metrics.PrunerZero));
        Assert.Equal("mul(W, sqrt(X))", Oos.Canonical(Metrics.Wanda));
    }

    [Theory]
    [InlineData("sub(W, W)")]
    [InlineData("sub(mms(G), mms(skp(G)))")]
    [InlineData("exp(sub(X, X))")]
    [InlineData("mms(log(sub(G, G)))")]
    public void Constants_are_detected(string s) => Assert.True(Oos.IsConstant(Oos.Simplify(P(s))));

    [Fact]
    public void Log_of_zero_is_a_constant_but_a_shift_is_not()
    {
        Assert.False(Oos.IsConstant(Oos.Simplify(P("add(W, log(sub(G, G)))"))));
        Assert.Equal("mms(W)", Oos.Canonical(P("mms(mms(zsn(add(W, sub(X, X)))))")));
    }

    // ---- property test ----

    sealed record Inputs(float[] W, float[] G, float[] X, int Rows, int Cols);

    static Inputs MakeInputs(Rng rng, int rows, int cols, bool degenerate)
    {
        int n = rows * cols;
        var w = new float[n]; var g = new float[n]; var x = new float[cols];
        for (int i = 0; i < n; i++)
        {
            w[i] = rng.Next(6) == 0 ? 0f : (float)(rng.NextDouble() * 4 - 2); // raw weights: negative and zero
            g[i] = degenerate ? 0f : rng.Next(5) == 0 ? 0f : (float)(rng.NextDouble() * 3);
        }
        for (int c = 0; c < cols; c++) x[c] = degenerate ? 1.5f : rng.Next(5) == 0 ? 0f : (float)(rng.NextDouble() * 5);
        if (degenerate) for (int c = 0; c < cols; c++) w[c] = 0.75f; // a constant row
        return new Inputs(w, g, x, rows, cols);
    }

    static double[] Eval(Expr e, Inputs i) => ReferenceScorer.Score(e, i.W, i.G, i.X, i.Rows, i.Cols);

    static Inputs Perturb(Inputs i, Rng rng)
    {
        float J(float v) => (float)(v * (1 + 1e-5 * (rng.NextDouble() * 2 - 1)));
        return i with { W = [.. i.W.Select(J)], G = [.. i.G.Select(J)], X = [.. i.X.Select(J)] };
    }

    static bool Close(double[] a, double[] b, double tol)
    {
        double maxAbs = a.Max(Math.Abs);
        for (int k = 0; k < a.Length; k++)
        {
            double scale = Math.Max(Math.Max(Math.Abs(a[k]), Math.Abs(b[k])), Math.Max(1e-9 * maxAbs, 1e-300));
            if (!(Math.Abs(a[k] - b[k]) <= tol * scale)) return false;
        }
        return true;
    }

    static bool Overflows(Expr e, Inputs i) =>
        e.Preorder().Any(n => Eval(n.Node, i).Any(v => !double.IsFinite(v) || Math.Abs(v) > 1e100));

    // Random trees biased towards what the rules match, so every rule gets exercised.
    static readonly Func<Expr, Expr, Expr>[] Patterns =
    [
        (a, b) => Expr.Unary(Op.Sqrt, Expr.Unary(Op.Sqr, a)),
        (a, b) => Expr.Unary(Op.Sqr, Expr.Unary(Op.Sqrt, a)),
        (a, b) => Expr.Unary(Op.Neg, Expr.Unary(Op.Neg, a)),
        (a, b) => Expr.Unary(Op.Abs, a),
        (a, b) => Expr.Unary(Op.Neg, a),
        (a, b) => Expr.Unary(Op.Skp, a),
        (a, b) => Expr.Unary(Op.Pow, a),
        (a, b) => Expr.Binary(Op.Sub, a, a),
        (a, b) => Expr.Binary(Op.Mul, a, a),
        (a, b) => Expr.Unary(Op.Mms, Expr.Binary(Op.Div, a, b)),
        (a, b) => Expr.Unary(Op.Zsn, Expr.Unary(Op.Mms, a)),
        (a, b) => Expr.Unary(Op.Mms, Expr.Unary(Op.Zsn, a)),
        (a, b) => Expr.Binary(Op.Add, a, Expr.Unary(Op.Neg, b)),
        (a, b) => Expr.Binary(Op.Sub, Expr.Unary(Op.Neg, a), b),
        (a, b) => Expr.Binary(Op.Div, a, Expr.Unary(Op.Abs, b)),
        (a, b) => Expr.Binary(Op.PDiv, Expr.Unary(Op.Neg, a), b),
        (a, b) => Expr.Unary(Op.Tanh, Expr.Unary(Op.Neg, a)),
        (a, b) => Expr.Unary(Op.Log, Expr.Unary(Op.Abs, a)),
        (a, b) => Expr.Unary(Op.Exp, Oos.Zero),
    ];

    static Expr Gen(Rng rng, int h)
    {
        if (h <= 0 || rng.NextDouble() < 0.15) return Expr.Leaf(rng.Pick(Ops.Terminals));
        if (h >= 2 && rng.NextDouble() < 0.45)
            return rng.Pick(Patterns)(Gen(rng, h - 2), Gen(rng, h - 2));
        var op = rng.Pick([.. Ops.Unary, .. Ops.Binary]);
        return Ops.Arity(op) == 1 ? Expr.Unary(op, Gen(rng, h - 1)) : Expr.Binary(op, Gen(rng, h - 1), Gen(rng, h - 1));
    }

    [Fact]
    public void Simplify_preserves_scores_on_random_trees()
    {
        var rng = new Rng(12345);
        var inputs = new[] { MakeInputs(rng, 4, 6, false), MakeInputs(rng, 3, 5, false), MakeInputs(rng, 3, 4, true) };
        var firedCount = new Dictionary<string, int>();
        int compared = 0, skipped = 0, trees = 4000;
        var failures = new List<string>();
        for (int t = 0; t < trees; t++)
        {
            var e = t % 4 == 3 ? Trees.Grow(rng, 5, 0) : Gen(rng, 2 + t % 5);
            var fired = new List<string>();
            var s = Oos.Simplify(e, fired);

            // Structural invariants: fixed point, never larger (pulling neg up may add a level), prints and parses back.
            Assert.Equal(s, Oos.Simplify(s));
            Assert.True(s.Size <= e.Size, $"{e} -> {s} grew");
            Assert.Equal(s, MetricParser.Parse(s.ToString()));

            bool skip = false, ok = true;
            foreach (var inp in inputs)
            {
                var a = Eval(e, inp);
                if (a.Any(v => !double.IsFinite(v) || Math.Abs(v) > 1e100)) { skip = true; break; }
                var b = Eval(s, inp);
                if (Oos.IsNonNegative(s)) Assert.True(b.All(v => !(v < 0)), $"IsNonNegative wrong for {s}");
                if (Close(a, b, 1e-7)) continue;
                // Rounding-level rules are only checked where the tree itself is stable at rounding level.
                if (Overflows(e, inp) || !Close(a, Eval(e, Perturb(inp, rng)), 1e-3)) { skip = true; break; }
                ok = false;
                failures.Add($"{e} -> {s} [{string.Join(",", fired)}]");
                break;
            }
            if (skip) { skipped++; continue; }
            if (ok)
            {
                compared++;
                foreach (var r in fired.Distinct()) firedCount[r] = firedCount.GetValueOrDefault(r) + 1;
            }
        }
        output.WriteLine($"{compared} compared, {skipped} skipped (overflow or ill-conditioned); rules fired: " +
                         string.Join(", ", firedCount.OrderBy(k => k.Key).Select(k => $"{k.Key} {k.Value}")));
        Assert.True(failures.Count == 0, $"{failures.Count} trees changed value:\n{string.Join("\n", failures.Take(10))}");
        Assert.True(compared > trees * 0.6, $"only {compared} of {trees} trees compared ({skipped} skipped)");
        foreach (var rule in Oos.RuleNames)
            Assert.True(firedCount.GetValueOrDefault(rule) >= 5, $"rule {rule} fired in only {firedCount.GetValueOrDefault(rule)} compared trees");
    }
}
