using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace PrunerZero.Runtime.ZeroShot;

/// <summary>
/// One task's result. Acc and AccNorm are never mixed: AccNorm is null where the harness does not report it
/// (BoolQ, RTE, WinoGrande). Stderr is the harness's sample stderr of the mean, sqrt(p(1 − p) / (n − 1)).
/// Truncated counts items with an option cut from the left to fit the model's max length.
/// </summary>
public sealed record ZeroShotTaskResult(
    string Task, string Label, bool Derived, int Items, int Truncated,
    double Acc, double AccStderr, double? AccNorm, double? AccNormStderr, double Seconds, string Source);

/// <summary>
/// Results of a zero-shot run and its two means over tasks:
/// <see cref="MeanAcc"/> (acc on every task: the "Mean" column of the Wanda and Pruner-Zero tables, whose
/// HellaSwag/ARC/OpenBookQA numbers are acc, e.g. LLaMA-7B HellaSwag 56.92 where acc_norm is about 76) and
/// <see cref="MeanAccNorm"/> (acc_norm where the harness reports it, acc elsewhere: the convention of
/// LLM-Pruner and others). <see cref="Mean"/> is MeanAcc.
/// </summary>
public sealed class ZeroShotReport
{
    public const string Harness = "lm-evaluation-harness v0.4.x task definitions (the prompts of v0.3, which Wanda and Pruner-Zero ran, are the same)";

    public required IReadOnlyList<ZeroShotTaskResult> Tasks { get; init; }
    public required bool Bos { get; init; }
    public required int MaxLength { get; init; }
    public int? Limit { get; init; }
    public double Seconds { get; init; }

    /// <summary>Mean of acc over the tasks (the paper tables' Mean).</summary>
    public double MeanAcc => Tasks.Average(t => t.Acc);

    /// <summary>Mean of acc_norm where reported and acc elsewhere.</summary>
    public double MeanAccNorm => Tasks.Average(t => t.AccNorm ?? t.Acc);

    /// <summary>The headline mean: <see cref="MeanAcc"/>.</summary>
    public double Mean => MeanAcc;

    static string F(double? x) => x is double v && !double.IsNaN(v) ? v.ToString("0.0000", CultureInfo.InvariantCulture) : "-";

    /// <summary>A plain-text table: task, items, acc ± stderr, acc_norm ± stderr, truncated, seconds; then both means.</summary>
    public string Describe()
    {
        int w = Math.Max(34, Tasks.Max(t => t.Label.Length) + 2);
        var sb = new StringBuilder();
        sb.AppendLine($"{"task".PadRight(w)}{"n",6}  {"acc",7} ±{"stderr",-7}  {"acc_norm",8} ±{"stderr",-7}  {"truncated",9}  {"seconds",7}");
        foreach (var t in Tasks)
            sb.AppendLine($"{t.Label.PadRight(w)}{t.Items,6}  {F(t.Acc),7} ±{F(t.AccStderr),-7}  {F(t.AccNorm),8} {(t.AccNorm is null ? " " : "±")}{(t.AccNorm is null ? "" : F(t.AccNormStderr)),-7}  {t.Truncated,9}  {t.Seconds,7:0.0}");
        sb.AppendLine($"{"mean of acc (Wanda / Pruner-Zero tables)".PadRight(w + 9)}{F(MeanAcc)}");
        sb.AppendLine($"{"mean of acc_norm where reported, else acc".PadRight(w + 9)}{F(MeanAccNorm)}");
        sb.Append($"{Tasks.Count} tasks{(Limit is int l ? $", first {l} items each" : "")}, max length {MaxLength}, BOS {(Bos ? "added" : "not added (harness default)")}, {Seconds:0.0} s; {Harness}");
        if (Tasks.Any(t => t.Derived)) sb.Append("\nnote: a derived (non-official) data file was used; its numbers are not comparable with published ones");
        return sb.ToString();
    }

    static JsonNode? Num(double? x) => x is double v && !double.IsNaN(v) ? JsonValue.Create(v) : null;

    public JsonObject ToJson()
    {
        var tasks = new JsonArray();
        foreach (var t in Tasks)
            tasks.Add(new JsonObject
            {
                ["task"] = t.Task, ["label"] = t.Label, ["derived"] = t.Derived, ["items"] = t.Items, ["truncated"] = t.Truncated,
                ["acc"] = Num(t.Acc), ["acc_stderr"] = Num(t.AccStderr), ["acc_norm"] = Num(t.AccNorm), ["acc_norm_stderr"] = Num(t.AccNormStderr),
                ["seconds"] = t.Seconds, ["source"] = t.Source,
            });
        return new JsonObject
        {
            ["tasks"] = tasks,
            ["mean_acc"] = Num(MeanAcc),
            ["mean_acc_norm_where_reported"] = Num(MeanAccNorm),
            ["limit"] = Limit,
            ["max_length"] = MaxLength,
            ["bos"] = Bos,
            ["harness"] = Harness,
            ["seconds"] = Seconds,
        };
    }
}
