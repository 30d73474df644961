def describe(index, text):
    return {"segment": index, "length": len(text)}
