namespace PrunerZero.Runtime.Pruning;

/// <summary>What each row keeps: unstructured sparsity (k = floor(cols·s) pruned per row) or N:M (N pruned of every M inputs).</summary>
public sealed record PruneTarget(double Sparsity, int N = 0, int M = 0)
{
    public bool IsNM => M > 0;

    public static PruneTarget Unstructured(double s)
    {
        if (!(s >= 0 && s < 1)) throw new PrunerZeroException($"{UserError.P("sparsity")} must be in [0, 1), got {s}");
        return new PruneTarget(s);
    }

    /// <summary>Parses "2:4".</summary>
    public static PruneTarget ParseNM(string text)
    {
        var parts = text.Split(':');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int n) || !int.TryParse(parts[1], out int m) || n <= 0 || m <= 0 || n >= m)
            throw new PrunerZeroException($"{UserError.P("nm")} must be N:M with 0 < N < M, e.g. 2:4; got '{text}'");
        return new PruneTarget((double)n / m, n, m);
    }

    public override string ToString() => IsNM ? $"{N}:{M}" : $"{Sparsity:0.###} unstructured";
}
