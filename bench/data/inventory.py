"""A small inventory of items kept in a warehouse."""

from dataclasses import dataclass, field


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 0
    tags: list = field(default_factory=list)

    def total_value(self):
        return self.price * self.quantity

    def is_in_stock(self):
        return self.quantity > 0


class Inventory:
    def __init__(self):
        self.items = {}

    def add(self, item):
        if item.name in self.items:
            self.items[item.name].quantity += item.quantity
        else:
            self.items[item.name] = item

    def remove(self, name, quantity):
        item = self.items.get(name)
        if item is None:
            raise KeyError(name)
        if quantity > item.quantity:
            raise ValueError("not enough items")
        item.quantity -= quantity

    def total_value(self):
        return sum(item.total_value() for item in self.items.values())

    def in_stock(self):
        return [item for item in self.items.values() if item.is_in_stock()]

    def with_tag(self, tag):
        return [item for item in self.items.values() if tag in item.tags]

    def cheapest(self):
        return min(self.items.values(), key=lambda item: item.price)

    def most_valuable(self):
        return max(self.items.values(), key=lambda item: item.total_value())


def main():
    inventory = Inventory()
    inventory.add(Item("hammer", 12.5, 10, ["tools"]))
    inventory.add(Item("nails", 0.05, 1000, ["tools", "small"]))
    inventory.add(Item("paint", 20.0, 5, ["decor"]))
    inventory.add(Item("brush", 4.0, 0, ["decor", "small"]))
    inventory.remove("nails", 200)
    print("total value:", inventory.total_value())
    print("in stock:", [item.name for item in inventory.in_stock()])
    print("small items:", [item.name for item in inventory.with_tag("small")])
    print("cheapest:", inventory.cheapest().name)
    print("most valuable:", inventory.most_valuable().name)


if __name__ == "__main__":
    main()
