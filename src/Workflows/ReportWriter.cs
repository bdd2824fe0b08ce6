// Files a user reads, plots and diffs, written into the run directory at the end of a search:
//   report.json   everything: parameters, leaders (screen + full), baselines, best, history
//   report.md     the same as tables
//   history.csv   iteration,best,median,population,evaluations,duplicates,skipped,same_mask,cut
//   fitness.png   best and median screen perplexity per iteration (ScottPlot, headless via SkiaSharp)
//   best.json     the best tree as nested {op, children}
//   best.txt      the best tree as a prefix expression that `prune --metric` / `score` accept
//   workers.csv   subject,kind,worker: which cluster worker evaluated what (cluster runs only)
//   transfer.csv  the leaders and baselines on each transfer model (with --transfer-model; ReportWriter.Transfer.cs)
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PrunerZero.Kernels;
using PrunerZero.Search;

namespace PrunerZero.Workflows;

public static partial class ReportWriter
{
    public static Dictionary<string, string> Write(SearchOptions o, SearchReport r, string dbPath)
    {
        var dir = o.RunDir;
        var files = new Dictionary<string, string> { ["db"] = dbPath };

        var csv = new StringBuilder("iteration,best,median,population,evaluations,duplicates,skipped,same_mask,cut\n");
        foreach (var h in r.History)
            csv.Append(CultureInfo.InvariantCulture, $"{h.Iteration},{Num(h.Best)},{Num(h.Median)},{h.PopulationSize},{h.Evaluations},{h.Duplicates},{h.Skipped},{h.SameMask},{h.Cut}\n");
        files["history"] = Save(dir, "history.csv", csv.ToString());

        files["plot"] = Path.Combine(dir, "fitness.png");
        Plot(r.History, files["plot"]);

        if (r.Best is not null)
        {
            files["best-json"] = Save(dir, "best.json", ExprJson.ToJson(r.Best.Expr).ToJsonString(Indented) + "\n");
            files["best-expr"] = Save(dir, "best.txt", r.Best.Expr + "\n");
        }

        if (r.Workers.Count > 0)
        {
            var w = new StringBuilder("subject,kind,worker\n");
            foreach (var a in r.Workers) w.Append(CultureInfo.InvariantCulture, $"{CsvField(a.Subject)},{a.Kind},{CsvField(a.Worker)}\n");
            files["workers"] = Save(dir, "workers.csv", w.ToString());
        }

        if (r.Transfers.Count > 0) files["transfer"] = Save(dir, "transfer.csv", TransferCsv(r.Transfers));

        var json = new JsonObject
        {
            ["algorithm"] = SearchRun.Algorithm,
            ["parameters"] = new JsonObject
            {
                ["population"] = o.Population, ["iterations"] = o.Iterations, ["min_height"] = o.MinHeight,
                ["max_height"] = o.MaxHeight, ["top_k"] = o.TopK, ["mutation"] = o.Mutation, ["seed"] = o.Seed,
                ["protocol"] = o.Protocol,
            },
            ["evaluations"] = r.Evaluations, ["fitness_calls_this_process"] = r.FitnessCalls, ["cache_hits"] = r.CacheHits,
            ["same_mask"] = r.SameMask, ["mask_fingerprint"] = r.FingerprintMethod, ["cut"] = r.Cut, ["forward_tokens"] = r.ForwardTokens,
            ["best"] = r.Best is null ? null : Candidate(r.Best),
            ["top"] = new JsonArray([.. r.Top.Select(c => (JsonNode)Candidate(c))]),
            ["baselines"] = new JsonArray([.. r.Baselines.Select(b => (JsonNode)new JsonObject
            {
                ["name"] = b.Name, ["expr"] = b.Expr.ToString(), ["screen"] = Result(b.Screen), ["full"] = Result(b.Full),
            })]),
            ["history"] = new JsonArray([.. r.History.Select(h => (JsonNode)new JsonObject
            {
                ["iteration"] = h.Iteration, ["best"] = Json(h.Best), ["median"] = Json(h.Median),
                ["population"] = h.PopulationSize, ["evaluations"] = h.Evaluations, ["duplicates"] = h.Duplicates,
                ["same_mask"] = h.SameMask, ["cut"] = h.Cut,
            })]),
            ["transfer"] = new JsonArray([.. r.Transfers.Select(t => (JsonNode)TransferJson(t))]),
        };
        files["report-json"] = Save(dir, "report.json", json.ToJsonString(Indented) + "\n");
        files["report-md"] = Save(dir, "report.md", Markdown(o, r));
        return files;
    }

    static string CsvField(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    static JsonObject Candidate(CandidateResult c) => new()
    {
        ["id"] = c.Id, ["expr"] = c.Expr.ToString(), ["generated"] = c.Generated, ["height"] = Trees.Height(c.Expr),
        ["iteration"] = c.Iteration, ["screen"] = Result(c.Screen), ["full"] = c.Full is null ? null : Result(c.Full),
        ["tree"] = ExprJson.ToJson(c.Expr),
    };

    static JsonObject Result(FitnessResult f) => new()
    {
        ["valid"] = f.Valid, ["perplexity"] = Json(f.Perplexity), ["reason"] = f.InvalidReason, ["seconds"] = f.Seconds,
        ["tokens"] = f.Tokens,
    };

    static JsonNode? Json(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
    static string Num(double v) => double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";
    static string Ppl(FitnessResult? f) => f is null ? "-" : f.Valid && double.IsFinite(f.Perplexity)
        ? f.Perplexity.ToString("0.###", CultureInfo.InvariantCulture) : "invalid";

    static string Save(string dir, string name, string text)
    {
        var path = Path.Combine(dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    static string Markdown(SearchOptions o, SearchReport r)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"# Pruner-Zero search\n\npopulation {o.Population}, iterations {o.Iterations}, height {o.MinHeight}..{o.MaxHeight}, top-k {o.TopK}, mutation {o.Mutation}, seed {o.Seed}, {o.Protocol}\n\n");
        sb.Append(CultureInfo.InvariantCulture, $"{r.Evaluations} candidates evaluated, {r.CacheHits} duplicates skipped by the cache.\n\n");
        sb.Append(SameMaskLine(r));
        sb.Append(CultureInfo.InvariantCulture,
            $"Early stops: {r.Cut} of {r.Evaluations} candidates stopped their screen once they could not enter the population (no perplexity; in search.db with their bound and the windows seen). Forward passes: {r.ForwardTokens:N0} tokens in all.\n\n");
        sb.Append("| rank | metric | height | screen ppl | full ppl |\n| --- | --- | --- | --- | --- |\n");
        for (int i = 0; i < r.Top.Count; i++)
            sb.Append(CultureInfo.InvariantCulture, $"| {i + 1} | `{r.Top[i].Expr}` | {Trees.Height(r.Top[i].Expr)} | {Ppl(r.Top[i].Screen)} | {Ppl(r.Top[i].Full)} |\n");
        if (r.Baselines.Count > 0)
        {
            sb.Append("\n| baseline | metric | screen ppl | full ppl |\n| --- | --- | --- | --- |\n");
            foreach (var b in r.Baselines)
                sb.Append(CultureInfo.InvariantCulture, $"| {b.Name} | `{b.Expr}` | {Ppl(b.Screen)} | {Ppl(b.Full)} |\n");
        }
        if (r.Best is not null) sb.Append(CultureInfo.InvariantCulture, $"\nBest (by full perplexity among the leaders): `{r.Best.Expr}`\n");
        foreach (var t in r.Transfers) sb.Append(TransferMarkdown(t));
        if (r.Workers.Count > 0)
        {
            sb.Append("\n| worker | screen checks | full checks |\n| --- | --- | --- |\n");
            foreach (var g in r.Workers.GroupBy(a => a.Worker).OrderBy(g => g.Key, StringComparer.Ordinal))
                sb.Append(CultureInfo.InvariantCulture, $"| {g.Key} | {g.Count(a => a.Kind == "screen")} | {g.Count(a => a.Kind == "full")} |\n");
            sb.Append("\nEvery evaluation and its worker: workers.csv.\n");
        }
        return sb.ToString();
    }

    /// <summary>How many evaluations the mask fingerprints saved (a same-mask candidate copies the fitness, no forward pass).</summary>
    static string SameMaskLine(SearchReport r) => r.FingerprintMethod is null
        ? "Mask fingerprints: not made by this fitness; every candidate was evaluated.\n\n"
        : string.Create(CultureInfo.InvariantCulture,
            $"Same mask: {r.SameMask} of {r.Evaluations} candidates ({(r.Evaluations == 0 ? 0 : 100.0 * r.SameMask / r.Evaluations):0.#}%) pruned exactly the weights of an earlier one and took its fitness without a forward pass ({r.FingerprintMethod}); the leaders below are distinct masks.\n\n");

    /// <summary>Best and median screen perplexity per iteration; iterations with no valid member are left out.</summary>
    public static void Plot(IReadOnlyList<HistoryPoint> history, string path)
    {
        var plt = new ScottPlot.Plot();
        var best = history.Where(h => double.IsFinite(h.Best)).ToArray();
        var med = history.Where(h => double.IsFinite(h.Median)).ToArray();
        if (best.Length > 0)
        {
            var s = plt.Add.Scatter(best.Select(h => (double)h.Iteration).ToArray(), best.Select(h => h.Best).ToArray());
            s.LegendText = "best";
            s.MarkerSize = 0;
        }
        if (med.Length > 0)
        {
            var s = plt.Add.Scatter(med.Select(h => (double)h.Iteration).ToArray(), med.Select(h => h.Median).ToArray());
            s.LegendText = "median";
            s.MarkerSize = 0;
        }
        plt.Title("Pruner-Zero search: screen perplexity of the population");
        plt.XLabel("iteration");
        plt.YLabel("perplexity (lower is better)");
        if (best.Length > 0 || med.Length > 0) plt.ShowLegend();
        plt.SavePng(path, 900, 540);
    }
}
