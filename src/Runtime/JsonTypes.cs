using System.Text.Json;
using System.Text.Json.Nodes;

namespace PrunerZero.Runtime;

/// <summary>
/// Typed reads of the JSON files of a checkpoint (config.json, tokenizer_config.json, special_tokens_map.json):
/// absent or null is "not given"; a value of another JSON type is refused naming the file, the key, the type
/// expected and what was found (a string "false" is not false, a number is not a class name).
/// </summary>
public static class JsonTypes
{
    /// <summary>What a JSON value is, for a message: the string "false", the number 5, a list [...], an object {...}.</summary>
    public static string Found(JsonNode? n)
    {
        if (n is null) return "null";
        string text = n.ToJsonString();
        if (text.Length > 60) text = text[..57] + "...";
        return n.GetValueKind() switch
        {
            JsonValueKind.String => $"the string {text}",
            JsonValueKind.Number => $"the number {text}",
            JsonValueKind.True or JsonValueKind.False => $"the boolean {text}",
            JsonValueKind.Array => $"a list {text}",
            JsonValueKind.Object => $"an object {text}",
            _ => text,
        };
    }

    static PrunerZeroException Wrong(string file, string key, string expected, JsonNode? found) =>
        new($"{file}: key '{key}' must be {expected}, found {Found(found)}");

    public static bool? Bool(JsonObject? o, string key, string file) => o?[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        var x => throw Wrong(file, key, "true or false", x),
    };

    public static string? String(JsonObject? o, string key, string file) => o?[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var x => throw Wrong(file, key, "a string", x),
    };

    /// <summary>A special token as tokenizer_config.json writes it: a string, or an AddedToken object with a string "content".</summary>
    public static string? Token(JsonObject? o, string key, string file) => o?[key] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonObject t => t["content"] is JsonValue c && c.GetValueKind() == JsonValueKind.String ? c.GetValue<string>()
            : throw Wrong(file, key + ".content", "a string", t["content"]),
        var x => throw Wrong(file, key, "a string or an object with a string \"content\"", x),
    };

    /// <summary>An integer (a whole-valued number such as 4.0 too).</summary>
    public static int? Int(JsonObject? o, string key, string file)
    {
        var n = o?[key];
        if (n is null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            if (v.TryGetValue<int>(out var i)) return i;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
        }
        throw Wrong(file, key, "an integer", n);
    }

    public static double? Number(JsonObject? o, string key, string file)
    {
        var n = o?[key];
        if (n is null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d)) return d;
        throw Wrong(file, key, "a number", n);
    }

    public static JsonObject? Object(JsonObject? o, string key, string file) => o?[key] switch
    {
        null => null,
        JsonObject x => x,
        var x => throw Wrong(file, key, "an object", x),
    };
}
