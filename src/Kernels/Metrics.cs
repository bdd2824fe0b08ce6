// Named metrics from the paper, and name-or-expression resolution for CLI arguments.
namespace PrunerZero.Kernels;

public static class Metrics
{
    /// <summary>magnitude = |W| (Han et al.).</summary>
    public static readonly Expr Magnitude = Expr.W;
    /// <summary>wanda = |W| * sqrt(X), with X the per-column sum of squared activations (||X_j||², so sqrt gives the l2 norm).</summary>
    public static readonly Expr Wanda = Expr.Binary(Op.Mul, Expr.W, Expr.Unary(Op.Sqrt, Expr.X));
    /// <summary>pruner-zero = |W|² * mms(G), the metric found by the Pruner-Zero search.</summary>
    public static readonly Expr PrunerZero = Expr.Binary(Op.Mul, Expr.Unary(Op.Sqr, Expr.W), Expr.Unary(Op.Mms, Expr.G));

    public static readonly IReadOnlyDictionary<string, Expr> Named =
        new Dictionary<string, Expr>(StringComparer.OrdinalIgnoreCase)
        {
            ["magnitude"] = Magnitude,
            ["wanda"] = Wanda,
            ["pruner-zero"] = PrunerZero,
        };

    /// <summary>A metric name (magnitude, wanda, pruner-zero; case-insensitive) or an expression in prefix syntax.</summary>
    public static Expr Resolve(string nameOrExpr)
    {
        ArgumentNullException.ThrowIfNull(nameOrExpr);
        return Named.TryGetValue(nameOrExpr.Trim(), out var e) ? e : MetricParser.Parse(nameOrExpr);
    }
}
