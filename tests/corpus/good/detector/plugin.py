"""Reports each 'hello' in each segment, in the inspect hook's wire shape."""


def inspect(segments, ctx):
    found = []
    for index, text in enumerate(segments):
        start = text.find("hello")
        while start >= 0:
            found.append({"type": "greeting", "segment": index, "start": start, "end": start + 5})
            start = text.find("hello", start + 1)
    return found
