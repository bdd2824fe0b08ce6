namespace PrunerZero.Workflows;

/// <summary>JSON has no NaN or infinity: such a value is written as null, with a note saying what it was.</summary>
public static class JsonNumbers
{
    public static double? Finite(double? v) => v is double d && double.IsFinite(d) ? d : null;

    /// <summary>Null for a finite (or absent) value; otherwise e.g. "perplexity is NaN (non-finite loss: NaN or Inf in the weights or activations)".</summary>
    public static string? Note(string what, double? v) =>
        v is double d && !double.IsFinite(d)
            ? $"{what} is {(double.IsNaN(d) ? "NaN" : d > 0 ? "+Infinity" : "-Infinity")} (non-finite loss: NaN or Inf in the weights or activations)"
            : null;
}
