// The transfer tables (with --transfer-model), one per transfer model: in report.md, report.json and transfer.csv
// (one CSV, its first column the transfer model, so every model's rows plot from one file).
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using PrunerZero.Search;

namespace PrunerZero.Workflows;

public static partial class ReportWriter
{
    const string TransferColumns = "transfer_model,name,metric,search_ppl,transfer_ppl,search_rank,transfer_rank,transfer_valid,transfer_reason,transfer_seconds";

    static string Rank(int? r) => r?.ToString(CultureInfo.InvariantCulture) ?? "-";

    static string TransferCsv(IReadOnlyList<TransferReport> transfers)
    {
        var sb = new StringBuilder(TransferColumns + "\n");
        foreach (var t in transfers)
        foreach (var r in t.Rows)
            sb.Append(CultureInfo.InvariantCulture,
                $"{CsvField(t.Model)},{CsvField(r.Name)},{CsvField(r.Expr.ToString())},{Num(r.SearchFull.Perplexity)},{Num(r.Transfer.Perplexity)},{r.SearchRank},{r.TransferRank}," +
                $"{r.Transfer.Valid},{CsvField(r.Transfer.InvalidReason ?? "")},{r.Transfer.Seconds.ToString("0.000", CultureInfo.InvariantCulture)}\n");
        return sb.ToString();
    }

    static JsonObject TransferJson(TransferReport t) => new()
    {
        ["model"] = t.Model, ["model_sha256"] = t.Sha256, ["protocol"] = t.Protocol,
        ["rows"] = new JsonArray([.. t.Rows.Select(r => (JsonNode)new JsonObject
        {
            ["name"] = r.Name, ["expr"] = r.Expr.ToString(), ["search_full"] = Result(r.SearchFull), ["transfer"] = Result(r.Transfer),
            ["search_rank"] = r.SearchRank, ["transfer_rank"] = r.TransferRank,
        })]),
    };

    static string TransferMarkdown(TransferReport t)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"\n## Transfer to `{t.Model}`\n\nThe leaders (with a valid full check) and the baselines, pruned and evaluated with the full protocol on `{t.Model}` (sha256 {t.Sha256}): {t.Protocol}. Ranks: 1 = lowest perplexity among these rows.\n\n");
        sb.Append("| name | metric | search ppl | transfer ppl | search rank | transfer rank |\n| --- | --- | --- | --- | --- | --- |\n");
        foreach (var r in t.Rows)
            sb.Append(CultureInfo.InvariantCulture, $"| {r.Name} | `{r.Expr}` | {Ppl(r.SearchFull)} | {Ppl(r.Transfer)} | {Rank(r.SearchRank)} | {Rank(r.TransferRank)} |\n");
        sb.Append("\nThe same rows: transfer.csv.\n");
        return sb.ToString();
    }
}
