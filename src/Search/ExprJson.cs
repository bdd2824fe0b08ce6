// A metric tree as nested JSON: {"op": "mul", "children": [{"op": "W"}, {"op": "sqrt", "children": [{"op": "X"}]}]}.
// Terminals have no "children". Names are the canonical ones of Ops.Name, so the JSON and the
// prefix string (MetricParser) describe the same tree.
using System.Text.Json.Nodes;
using PrunerZero.Kernels;

namespace PrunerZero.Search;

public static class ExprJson
{
    public static JsonObject ToJson(Expr e)
    {
        var o = new JsonObject { ["op"] = Ops.Name(e.Op) };
        if (!e.IsTerminal) o["children"] = new JsonArray([.. e.Children.Select(c => (JsonNode)ToJson(c))]);
        return o;
    }

    public static Expr FromJson(JsonNode? node)
    {
        if (node is not JsonObject o || o["op"]?.GetValue<string>() is not string name)
            throw new FormatException($"expected an object with an \"op\" name, got {node?.ToJsonString() ?? "null"}");
        if (!Ops.TryParse(name, out var op)) throw new FormatException($"unknown op '{name}'");
        var kids = o["children"] as JsonArray ?? [];
        return Expr.Create(op, [.. kids.Select(FromJson)]);
    }
}
