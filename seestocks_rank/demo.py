"""Seeded generator of a realistic embedded demo for the category-page reranking pipeline.

``generate_demo`` writes a Google-style taxonomy slice, the active category pages, an offer catalog with
near-duplicates, mis-tagged offers, price outliers, stale offers and bad rows, human relevance judgments
and a ground-truth parquet (evaluation only). Output is byte-identical for a given seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

DEFAULT_REFERENCE_TIME = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
UNKNOWN_CATEGORY_ID = 999_999
BAD_ROW_KINDS = (
    "missing_product_id", "missing_title", "bad_price", "nonpositive_price",
    "unknown_category", "duplicate", "absurd_title", "bad_last_seen",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- data tables

_F, _E, _H = "Food, Beverages & Tobacco > Food Items", "Electronics", "Home & Garden > Kitchen & Dining"
TAXONOMY: tuple[tuple[int, str], ...] = (
    (412, "Food, Beverages & Tobacco"),
    (413, "Food, Beverages & Tobacco > Beverages"),
    (1868, "Food, Beverages & Tobacco > Beverages > Coffee"),
    (422, _F),
    (427, f"{_F} > Condiments & Sauces"),
    (4947, f"{_F} > Condiments & Sauces > Hot Sauce"),
    (6203, f"{_F} > Condiments & Sauces > Salsa"),
    (430, f"{_F} > Fruits & Vegetables"),
    (5796, f"{_F} > Fruits & Vegetables > Fresh & Frozen Vegetables"),
    (6016, f"{_F} > Fruits & Vegetables > Fresh & Frozen Vegetables > Peppers"),
    (6013, f"{_F} > Fruits & Vegetables > Fresh & Frozen Vegetables > Tomatoes"),
    (4608, f"{_F} > Seasonings & Spices"),
    (4610, f"{_F} > Seasonings & Spices > Herbs & Spices"),
    (632, "Hardware"),
    (3650, "Hardware > Tool Accessories"),
    (4282, "Hardware > Tool Accessories > Tool Storage"),
    (4283, "Hardware > Tool Accessories > Tool Storage > Tool Bags"),
    (4284, "Hardware > Tool Accessories > Tool Storage > Tool Boxes"),
    (1167, "Hardware > Tools"),
    (1217, "Hardware > Tools > Drills"),
    (5181, "Luggage & Bags"),
    (100, "Luggage & Bags > Backpacks"),
    (549, "Luggage & Bags > Suitcases"),
    (222, _E),
    (223, f"{_E} > Audio"),
    (1420, f"{_E} > Audio > Audio Accessories"),
    (505797, f"{_E} > Audio > Audio Accessories > Headphone Accessories"),
    (2165, f"{_E} > Audio > Audio Components"),
    (505771, f"{_E} > Audio > Audio Components > Headphones & Headsets"),
    (543626, f"{_E} > Audio > Audio Components > Headphones & Headsets > Headphones"),
    (543627, f"{_E} > Audio > Audio Components > Headphones & Headsets > Earbuds"),
    (262, f"{_E} > Communications"),
    (1801, f"{_E} > Communications > Telephony"),
    (264, f"{_E} > Communications > Telephony > Mobile Phone Accessories"),
    (2353, f"{_E} > Communications > Telephony > Mobile Phone Accessories > Phone Cases"),
    (499916, f"{_E} > Communications > Telephony > Mobile Phone Accessories > Phone Chargers"),
    (267, f"{_E} > Communications > Telephony > Mobile Phones"),
    (278, f"{_E} > Computers"),
    (328, f"{_E} > Computers > Laptops"),
    (4745, f"{_E} > Computers > Tablet Computers"),
    (2082, f"{_E} > Electronics Accessories"),
    (258, f"{_E} > Electronics Accessories > Computer Accessories"),
    (5281, f"{_E} > Electronics Accessories > Computer Accessories > Laptop Bags"),
    (166, "Apparel & Accessories"),
    (187, "Apparel & Accessories > Shoes"),
    (543680, "Apparel & Accessories > Shoes > Running Shoes"),
    (543681, "Apparel & Accessories > Shoes > Hiking Boots"),
    (536, "Home & Garden"),
    (638, _H),
    (6070, f"{_H} > Cookware & Bakeware"),
    (654, f"{_H} > Cookware & Bakeware > Cookware"),
    (6072, f"{_H} > Cookware & Bakeware > Cookware > Frying Pans"),
    (6073, f"{_H} > Cookware & Bakeware > Cookware > Saucepans"),
    (6074, f"{_H} > Cookware & Bakeware > Cookware > Stock Pots"),
    (730, f"{_H} > Kitchen Appliances"),
    (736, f"{_H} > Kitchen Appliances > Coffee Makers & Espresso Machines"),
    (988, "Sporting Goods"),
    (990, "Sporting Goods > Exercise & Fitness"),
    (6187, "Sporting Goods > Exercise & Fitness > Dumbbells"),
    (6188, "Sporting Goods > Exercise & Fitness > Yoga Mats"),
    (1011, "Sporting Goods > Outdoor Recreation"),
    (1013, "Sporting Goods > Outdoor Recreation > Camping & Hiking"),
    (1014, "Sporting Goods > Outdoor Recreation > Camping & Hiking > Tents"),
    (1019, "Sporting Goods > Outdoor Recreation > Camping & Hiking > Sleeping Bags"),
)

_GROCERS = ["Hacendado", "Carrefour Bio", "Eroski", "Bonduelle", "Frudesa", "Huerta Sol", "La Huerta", "Dia"]
_TOOLS = ["Makita", "DeWalt", "Stanley", "Bosch", "Milwaukee", "Ryobi", "Würth", "Einhell"]
_PANS = ["Tefal", "BRA", "WMF", "Castey", "Monix", "Le Creuset", "Lodge", "Jata"]
_METALS = ["Aluminium", "Cast Iron", "Stainless Steel", "Forged Aluminium", "Ceramic"]
_COLOURS = ["Black", "Navy", "Grey", "Olive", "Red", "Blue"]
_GENDER = ["Men's", "Women's", "Unisex"]
_EU = ["EU 38", "EU 40", "EU 42", "EU 43", "EU 44.5"]

# Per category (keyed by taxonomy node name): brands (or models: brand -> model names), product nouns,
# attribute slots a0.., a title template and the median offer price in EUR.
VOCAB: dict[str, dict[str, Any]] = {
    "Coffee": dict(
        brands=["Lavazza", "Illy", "Marcilla", "Saimaza", "Nespresso", "Starbucks", "Bonka", "Segafredo"],
        nouns=["Ground Coffee", "Coffee Beans", "Coffee Capsules", "Instant Coffee", "Decaf Ground Coffee"],
        a=[["Espresso", "Colombia", "Natural Roast", "Intenso", "Crema e Aroma", "100% Arabica"],
           ["250 g", "500 g", "1 kg", "10 capsules", "20 capsules"]],
        tpl="{b} {a0} {n} {a1}", price=7.0),
    "Hot Sauce": dict(
        brands=["Tabasco", "Cholula", "Valentina", "Frank's RedHot", "Huy Fong", "El Yucateco", "Tapatío",
                "Encona"],
        nouns=["Red Pepper Sauce", "Hot Sauce", "Chili Sauce", "Habanero Sauce", "Sriracha Chili Sauce",
               "Chipotle Pepper Sauce", "Jalapeño Hot Sauce"],
        a=[["Original", "Extra Hot", "Green", "Smoky", "Classic"],
           ["60 ml", "150 ml", "250 ml", "350 ml", "2 x 60 ml"]],
        tpl="{b} {a0} {n} {a1}", price=3.2),
    "Salsa": dict(
        brands=["Old El Paso", "Doritos", "Santa Maria", "Herdez", "Casa Fiesta", "Tostitos"],
        nouns=["Salsa", "Chunky Salsa", "Salsa Verde", "Pico de Gallo", "Chili Cheese Dip", "Tomato Salsa"],
        a=[["Mild", "Medium", "Hot", "Original"], ["226 g", "300 g", "430 g"]],
        tpl="{b} {a0} {n} {a1}", price=3.0),
    "Peppers": dict(
        brands=_GROCERS,
        nouns=["Red Bell Peppers", "Green Bell Peppers", "Padrón Peppers", "Jalapeño Peppers",
               "Mixed Sweet Peppers", "Piquillo Peppers", "Red Chili Peppers", "Yellow Bell Peppers"],
        a=[["Fresh", "Organic", "Frozen Sliced", "Roasted", "Fresh"], ["250 g", "500 g", "1 kg", "3 units"]],
        tpl="{b} {a0} {n} {a1}", price=4.2),
    "Tomatoes": dict(
        brands=_GROCERS,
        nouns=["Cherry Tomatoes", "Vine Tomatoes", "Plum Tomatoes", "Beef Tomatoes", "Raf Tomatoes",
               "Kumato Tomatoes"],
        a=[["Fresh", "Organic", "Fresh", "Frozen Diced"], ["250 g", "500 g", "1 kg", "6 units"]],
        tpl="{b} {a0} {n} {a1}", price=2.6),
    "Herbs & Spices": dict(
        brands=["Ducros", "Carmencita", "Schwartz", "McCormick", "Hacendado", "La Chinata"],
        nouns=["Smoked Paprika", "Chili Flakes", "Cayenne Pepper", "Black Pepper", "Cumin", "Oregano",
               "Chili Powder", "White Pepper"],
        a=[["Ground", "Whole", "Organic", "Hot", ""], ["40 g", "70 g", "100 g", "250 g"]],
        tpl="{b} {a0} {n} {a1}", price=2.4),
    "Tool Bags": dict(
        brands=_TOOLS,
        nouns=["Tool Bag", "Open Tote Tool Bag", "Tool Backpack", "Electrician's Tool Pouch",
               "Rolling Tool Bag", "Tool Belt Bag"],
        a=[["Heavy Duty Canvas", "Water Resistant", "Pro", "Wide Mouth", "Polyester"],
           ["16 in", "18 in", "20 in", "24 in"]],
        tpl="{b} {a0} {n} {a1}", price=38.0),
    "Tool Boxes": dict(
        brands=[*_TOOLS[:4], "Keter", "Curver", "Tayg"],
        nouns=["Tool Box", "Tool Chest", "Organizer Case", "Cantilever Tool Box", "Rolling Tool Box"],
        a=[["Plastic", "Metal", "Stackable", "Heavy Duty", "Waterproof"],
           ["16 in", "19 in", "22 in", "26 in"]],
        tpl="{b} {a0} {n} {a1}", price=32.0),
    "Drills": dict(
        brands=_TOOLS,
        nouns=["Cordless Drill Driver", "Hammer Drill", "Combi Drill", "Impact Driver", "Rotary Hammer"],
        a=[["18V", "12V", "20V Max", "Brushless 18V"], ["2 x 2.0Ah", "2 x 4.0Ah", "Body Only", "with Case"]],
        tpl="{b} {a0} {n} {a1}", price=120.0),
    "Backpacks": dict(
        brands=["Eastpak", "Samsonite", "The North Face", "Herschel", "Fjällräven", "Nike", "Adidas", "Totto",
                "Quechua"],
        nouns=["Backpack", "Daypack", "Laptop Backpack", "School Backpack", "Rolltop Backpack",
               "Travel Backpack"],
        a=[["Classic", "Urban", "Water Resistant", "Lightweight", "Anti-Theft"],
           ["20 L", "24 L", "30 L", "35 L"], _COLOURS],
        tpl="{b} {a0} {n} {a1} {a2}", price=48.0),
    "Suitcases": dict(
        brands=["Samsonite", "American Tourister", "Delsey", "Roncato", "Cabin Max", "Travelite",
                "Gladiator"],
        nouns=["Cabin Suitcase", "Hard Shell Suitcase", "Spinner Suitcase", "Check-In Luggage",
               "Carry-On Trolley"],
        a=[["Expandable", "Ultralight", "4-Wheel", "Polycarbonate"], ["55 cm", "68 cm", "75 cm"], _COLOURS],
        tpl="{b} {a0} {n} {a1} {a2}", price=95.0),
    "Headphone Accessories": dict(
        brands=["Geekria", "Brainwavz", "Sony", "Bose", "Sennheiser", "Wicked Cushions", "Dekoni"],
        nouns=["Replacement Ear Pads", "Replacement Headband Cushion", "Headphone Stand", "Headphone Cable",
               "Headphone Case"],
        a=[["for Sony WH-1000XM4", "for Bose QuietComfort 45", "for Sennheiser HD 450BT", "for ATH-M50x",
            "Universal"], ["Protein Leather", "Memory Foam", "Velour", "Black", ""]],
        tpl="{b} {a1} {n} {a0}", price=16.0),
    "Headphones & Headsets": dict(
        brands=["Logitech", "HyperX", "Razer", "SteelSeries", "Corsair", "Jabra", "Turtle Beach"],
        nouns=["Gaming Headset", "Wireless Gaming Headset", "Office Headset", "USB Headset with Microphone",
               "Call Center Headset"],
        a=[["7.1 Surround", "Stereo", "Noise Cancelling Mic", ""], ["PC/PS5", "USB-C", "Black", "White"]],
        tpl="{b} {a0} {n} {a1}", price=55.0),
    "Headphones": dict(
        models={"Sony": ["WH-1000XM5", "WH-1000XM4", "WH-CH720N"],
                "Bose": ["QuietComfort Ultra", "QC45", "700"],
                "Sennheiser": ["Momentum 4", "HD 450BT", "HD 560S"], "JBL": ["Tune 760NC", "Live 660NC"],
                "Audio-Technica": ["ATH-M50x", "ATH-M40x"], "Beyerdynamic": ["DT 770 Pro", "DT 990 Pro"],
                "Marshall": ["Major IV", "Monitor II"], "AKG": ["K371", "K92"]},
        nouns=["Headphones", "Over-Ear Headphones", "On-Ear Headphones", "Studio Headphones"],
        a=[["Wireless", "Bluetooth", "Wired", "Wireless Noise Cancelling"], _COLOURS[:4]],
        tpl="{b} {m} {a0} {n} {a1}", price=160.0),
    "Earbuds": dict(
        models={"Apple": ["AirPods Pro 2", "AirPods 4"], "Samsung": ["Galaxy Buds3 Pro", "Galaxy Buds FE"],
                "Sony": ["WF-1000XM5", "WF-C700N"], "JBL": ["Tune Buds", "Wave Beam"],
                "Jabra": ["Elite 8 Active", "Elite 4"], "Xiaomi": ["Redmi Buds 5", "Redmi Buds 6 Lite"],
                "Anker Soundcore": ["Liberty 4 NC", "Life P3"], "Huawei": ["FreeBuds 6i", "FreeBuds SE 2"]},
        nouns=["True Wireless Earbuds", "In-Ear Headphones", "Wireless Earbuds", "Sports Earbuds",
               "Earphones"],
        a=[["Bluetooth 5.3", "Noise Cancelling", "with Charging Case", "IPX4", ""],
           ["Black", "White", "Blue"]],
        tpl="{b} {m} {n} {a0} {a1}", price=80.0),
    "Phone Cases": dict(
        brands=["Spigen", "OtterBox", "Ringke", "ESR", "Nillkin", "Cellularline", "Ksix", "Mous"],
        nouns=["Phone Case", "Silicone Case", "Clear Case", "Wallet Case", "Rugged Case", "Magnetic Case"],
        a=[["for iPhone 15", "for iPhone 15 Pro", "for Samsung Galaxy S24", "for Galaxy A55",
            "for Xiaomi Redmi Note 13", "for Google Pixel 8"], ["Black", "Clear", "Blue", "Pink", "Green"],
           ["Shockproof", "Slim Fit", "MagSafe Compatible", "Anti-Yellowing", ""]],
        tpl="{b} {a2} {n} {a0} {a1}", price=15.0),
    "Phone Chargers": dict(
        brands=["Anker", "Belkin", "Samsung", "Apple", "Ugreen", "Baseus", "Xiaomi"],
        nouns=["USB-C Charger", "Fast Charger", "Wireless Charger", "Car Charger", "Power Bank",
               "Charging Cable"],
        a=[["15W", "20W", "25W", "45W", "65W"],
           ["for iPhone and Android", "GaN", "2-Port", "with USB-C Cable", ""]],
        tpl="{b} {a0} {n} {a1}", price=22.0),
    "Mobile Phones": dict(
        models={"Samsung": ["Galaxy S24", "Galaxy A55", "Galaxy A35"],
                "Apple": ["iPhone 15", "iPhone 15 Pro"],
                "Xiaomi": ["Redmi Note 13", "14T"], "Google": ["Pixel 8", "Pixel 8a"],
                "Motorola": ["Moto G84", "Edge 50"], "OPPO": ["Reno 12", "A79"], "realme": ["12 Pro", "C67"],
                "OnePlus": ["12R", "Nord 4"]},
        nouns=["Smartphone", "Mobile Phone", "5G Smartphone"],
        a=[["128GB", "256GB", "512GB", "8GB/256GB"], ["Black", "Blue", "Titanium Grey", "Green", "White"],
           ["Dual SIM", ""]],
        tpl="{b} {m} {n} {a0} {a1} {a2}", price=450.0),
    "Laptops": dict(
        models={"Lenovo": ["IdeaPad Slim 5", "ThinkPad E14", "Legion 5"],
                "HP": ["Pavilion 15", "EliteBook 840"], "Dell": ["Inspiron 15", "XPS 13", "Latitude 5440"],
                "ASUS": ["VivoBook 15", "ZenBook 14", "TUF A15"],
                "Acer": ["Aspire 5", "Swift Go 14", "Nitro V"], "MSI": ["Modern 15", "Katana 15"],
                "Samsung": ["Galaxy Book4"]},
        nouns=["Laptop", "Notebook", "Ultrabook", "Gaming Laptop", "2-in-1 Laptop"],
        a=[["Intel Core i5", "Intel Core i7", "AMD Ryzen 5", "AMD Ryzen 7", "Intel Core Ultra 7"],
           ["8GB RAM 256GB SSD", "16GB RAM 512GB SSD", "16GB RAM 1TB SSD", "32GB RAM 1TB SSD"],
           ["13.3 in", "14 in", "15.6 in", "16 in"]],
        tpl="{b} {m} {a2} {n} {a0} {a1}", price=850.0),
    "Tablet Computers": dict(
        models={"Apple": ["iPad Air", "iPad 10th Gen", "iPad mini"],
                "Samsung": ["Galaxy Tab S9 FE", "Galaxy Tab A9+"], "Lenovo": ["Tab P12", "Tab M11"],
                "Xiaomi": ["Pad 6", "Redmi Pad SE"], "Huawei": ["MatePad 11.5"]},
        nouns=["Tablet", "Tablet PC"],
        a=[["Wi-Fi", "Wi-Fi + 5G", "LTE"], ["64GB", "128GB", "256GB"],
           ["10.9 in", "11 in", "12.4 in", "8.3 in"]],
        tpl="{b} {m} {a2} {n} {a1} {a0}", price=380.0),
    "Laptop Bags": dict(
        brands=["Targus", "Samsonite", "Case Logic", "Tucano", "Dell", "HP", "Lenovo", "Thule"],
        nouns=["Laptop Bag", "Laptop Sleeve", "Messenger Laptop Bag", "Laptop Briefcase", "Laptop Case"],
        a=[["Slim", "Padded", "Water Resistant", "Neoprene", "Business"],
           ["13 in", "14 in", "15.6 in", "17.3 in"], _COLOURS[:3]],
        tpl="{b} {a0} {n} {a1} {a2}", price=35.0),
    "Running Shoes": dict(
        models={"Nike": ["Pegasus 41", "Vomero 17"], "Adidas": ["Ultraboost Light", "Adizero SL"],
                "ASICS": ["Gel-Nimbus 26", "Gel-Kayano 31"],
                "New Balance": ["Fresh Foam 1080", "FuelCell Rebel"],
                "Brooks": ["Ghost 16", "Glycerin 21"], "Hoka": ["Clifton 9", "Speedgoat 6"],
                "Saucony": ["Ride 17", "Peregrine 14"], "Joma": ["R.Hispalis", "Sierra"]},
        nouns=["Running Shoes", "Road Running Shoes", "Trail Running Shoes", "Running Trainers"],
        a=[_GENDER, _EU, ["Black", "White", "Blue", ""]],
        tpl="{b} {m} {a0} {n} {a2} {a1}", price=110.0),
    "Hiking Boots": dict(
        models={"Salomon": ["X Ultra 4 Mid", "Quest 4"], "Merrell": ["Moab 3 Mid", "Thermo Chill"],
                "Columbia": ["Newton Ridge", "Facet 75"], "The North Face": ["Vectiv Fastpack", "Hedgehog"],
                "Quechua": ["MH500", "MH100"], "Lowa": ["Renegade", "Innox Pro"],
                "Chiruca": ["Cares", "Dakota"]},
        nouns=["Hiking Boots", "Mid Hiking Boots", "Trekking Boots", "Walking Boots", "Mountain Boots"],
        a=[["GORE-TEX", "Waterproof", "Leather", ""], _GENDER, _EU],
        tpl="{b} {m} {a1} {a0} {n} {a2}", price=120.0),
    "Cookware": dict(
        brands=_PANS,
        nouns=["Cookware Set", "Pots and Pans Set", "Pan Set", "Saucepan Set"],
        a=[["3-Piece", "5-Piece", "7-Piece", "10-Piece"], _METALS, ["Induction Compatible", "PFOA-Free", ""]],
        tpl="{b} {a0} {a1} {n} {a2}", price=120.0),
    "Frying Pans": dict(
        brands=_PANS,
        nouns=["Frying Pan", "Non-Stick Frying Pan", "Skillet", "Wok", "Grill Pan", "Crepe Pan"],
        a=[_METALS, ["20 cm", "24 cm", "28 cm", "32 cm"], ["Induction Compatible", "PFOA-Free", ""]],
        tpl="{b} {a0} {n} {a1} {a2}", price=32.0),
    "Saucepans": dict(
        brands=_PANS,
        nouns=["Saucepan", "Saucepan with Lid", "Milk Pan", "Casserole", "Sauté Pan"],
        a=[_METALS, ["16 cm", "18 cm", "20 cm", "1.5 L", "2.5 L"], ["Induction Compatible", "PFOA-Free", ""]],
        tpl="{b} {a0} {n} {a1} {a2}", price=36.0),
    "Stock Pots": dict(
        brands=_PANS,
        nouns=["Stock Pot", "Stockpot with Lid", "Pasta Pot", "Pressure Cooker", "Dutch Oven"],
        a=[_METALS, ["6 L", "8 L", "10 L", "24 cm", "28 cm"], ["Induction Compatible", ""]],
        tpl="{b} {a0} {n} {a1} {a2}", price=48.0),
    "Coffee Makers & Espresso Machines": dict(
        brands=["De'Longhi", "Krups", "Philips", "Nespresso", "Cecotec", "Melitta", "Bosch", "Moulinex"],
        nouns=["Espresso Machine", "Drip Coffee Maker", "Capsule Coffee Machine",
               "Bean to Cup Coffee Machine", "Moka Pot", "French Press"],
        a=[["Automatic", "Compact", "Programmable", "Stainless Steel", ""],
           ["15 bar", "1.2 L", "1450 W", "10 cups", "Black", "Silver"]],
        tpl="{b} {a0} {n} {a1}", price=140.0),
    "Dumbbells": dict(
        brands=["Domyos", "Bowflex", "Gorilla Sports", "Tunturi", "Amazon Basics", "Bodytone"],
        nouns=["Adjustable Dumbbell", "Dumbbell Set", "Hex Dumbbell", "Neoprene Dumbbells", "Kettlebell"],
        a=[["2 x 2 kg", "2 x 5 kg", "2 x 10 kg", "20 kg", "24 kg"],
           ["Cast Iron", "Vinyl", "Rubber-Coated", ""]],
        tpl="{b} {a1} {n} {a0}", price=45.0),
    "Tents": dict(
        brands=["Quechua", "Coleman", "Vango", "Naturehike", "Ferrino", "MSR"],
        nouns=["Dome Tent", "Camping Tent", "Pop-Up Tent", "Backpacking Tent", "Family Tent",
               "Inflatable Tent"],
        a=[["2-Person", "3-Person", "4-Person", "6-Person"], ["Waterproof", "Ultralight", "3-Season", ""]],
        tpl="{b} {a0} {a1} {n}", price=130.0),
    "Sleeping Bags": dict(
        brands=["Quechua", "Coleman", "Vango", "Naturehike", "Mountain Warehouse", "Ferrino"],
        nouns=["Sleeping Bag", "Mummy Sleeping Bag", "Down Sleeping Bag", "Envelope Sleeping Bag",
               "Kids Sleeping Bag"],
        a=[["0°C", "5°C", "-5°C", "10°C", "-10°C"], ["Lightweight", "Compact", "Synthetic", ""],
           ["with Compression Sack", ""]],
        tpl="{b} {a1} {n} {a0} {a2}", price=55.0),
}  # fmt: skip

# Systematic mis-tagging: offers of the key category get tagged into one of the listed categories.
CONFUSIONS: dict[str, tuple[str, ...]] = {
    "Hot Sauce": ("Peppers",), "Herbs & Spices": ("Peppers",), "Salsa": ("Hot Sauce",),
    "Tomatoes": ("Peppers",), "Backpacks": ("Tool Bags", "Laptop Bags"), "Tool Boxes": ("Tool Bags",),
    "Sleeping Bags": ("Backpacks", "Tents"),
    "Laptop Bags": ("Laptops", "Backpacks"), "Phone Cases": ("Mobile Phones",),
    "Phone Chargers": ("Mobile Phones", "Laptops"), "Earbuds": ("Headphones",), "Headphones": ("Earbuds",),
    "Headphone Accessories": ("Headphones", "Headphones & Headsets"), "Tablet Computers": ("Laptops",),
    "Saucepans": ("Frying Pans",), "Frying Pans": ("Saucepans",), "Stock Pots": ("Saucepans",),
    "Hiking Boots": ("Running Shoes",), "Running Shoes": ("Hiking Boots",),
    "Coffee": ("Coffee Makers & Espresso Machines",), "Suitcases": ("Backpacks",),
}  # fmt: skip
# (page, true category) pairs judged 2: a near type or an accessory that legitimately belongs on the page.
NEAR_TYPES: frozenset[tuple[str, str]] = frozenset({
    ("Headphones", "Earbuds"), ("Earbuds", "Headphones"), ("Hot Sauce", "Salsa"), ("Salsa", "Hot Sauce"),
    ("Tool Bags", "Tool Boxes"), ("Tool Boxes", "Tool Bags"), ("Saucepans", "Stock Pots"),
    ("Stock Pots", "Saucepans"), ("Laptops", "Tablet Computers"),
    ("Headphones & Headsets", "Headphone Accessories"),
    ("Cookware", "Frying Pans"), ("Cookware", "Saucepans"), ("Cookware", "Stock Pots"),
})  # fmt: skip
MID_PAGES = ("Fresh & Frozen Vegetables", "Headphones & Headsets", "Cookware")
RETAILERS = (
    "TiendaMax", "ElectroPrecio", "CompraFácil", "MercaOferta", "SuperHogar", "DeportesYa",
    "PrecioClaro", "Bazar Iberia", "OutletSol", "MegaCompra", "La Despensa Online", "Click&Ahorra",
)  # fmt: skip
TOKEN_SUBS: dict[str, tuple[str, ...]] = {
    "in": ("inch", '"', "pulgadas"), "ml": ("mL", "ML"), "g": ("gr", "grs"), "kg": ("Kg", "kilo"),
    "L": ("l", "Litros"), "Bluetooth": ("BT",), "Wireless": ("Inalámbricos", "WL"), "Black": ("Negro", "BLK"),
    "Waterproof": ("Impermeable",), "with": ("w/", "con"), "Men's": ("Hombre", "Mens"),
    "Women's": ("Mujer", "Womens"), "Organic": ("Bio", "Ecológico"), "Fresh": ("Fresco",),
    "Set": ("Juego", "Kit"), "Case": ("Funda",), "Stainless": ("Inox",), "Grey": ("Gris",),
}  # fmt: skip
EXTRAS = (
    "- Envío gratis", "| Oferta", "- Envío 24h", "(Nuevo)", "[2025]", "- Garantía 2 años", "Pack 1",
    "- Outlet",
)  # fmt: skip
DESCRIPTIONS = (
    "{b} {n} {a}. Ships in 24-48 h.", "Genuine {b} product: {n}, {a}.", "Great value {n} from {b}; {a}.",
    "{n} by {b}. Official 2-year warranty.", "Compra tu {n} {b} al mejor precio. {a}.",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------- API


@dataclass(frozen=True)
class DemoPaths:
    """Locations of the generated demo files."""

    root: Path
    taxonomy: Path
    catalog: Path
    category_pages: Path
    judgments: Path
    truth: Path


@dataclass(frozen=True)
class _Tax:
    ids: dict[str, int]  # node name -> id
    parent: dict[str, str | None]

    def root(self, name: str) -> str:
        parent = self.parent[name]
        return name if parent is None else self.root(parent)

    def subtree(self, name: str) -> set[str]:
        out = {name}
        for node in self.parent:  # parents precede children in TAXONOMY
            if self.parent[node] in out:
                out.add(node)
        return out


def _taxonomy() -> _Tax:
    ids: dict[str, int] = {}
    parent: dict[str, str | None] = {}
    for cid, path in TAXONOMY:
        parts = path.split(" > ")
        ids[parts[-1]] = cid
        parent[parts[-1]] = parts[-2] if len(parts) > 1 else None
    assert len(ids) == len(TAXONOMY) == len(set(ids.values())), "taxonomy names and ids must be unique"
    return _Tax(ids, parent)


def _retailers(n: int) -> list[str]:
    return [RETAILERS[i] if i < len(RETAILERS) else f"Tienda{i + 1:02d}" for i in range(n)]


def _pretty_price(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Round to cents, with ``.99`` endings for most prices above 10 EUR."""
    p = np.maximum(np.round(p, 2), 0.01)
    nines = (p >= 10) & (rng.random(p.size) < 0.6)
    return np.where(nines, np.floor(p) + 0.99, p)


def _make_title(cat: dict[str, Any], rnd: random.Random) -> tuple[str, str, str, list[str]]:
    """One canonical title for ``cat``: returns (title, brand, noun, attributes)."""
    models: dict[str, list[str]] | None = cat.get("models")
    brand = rnd.choice(list(models) if models else cat["brands"])
    model = rnd.choice(models[brand]) if models else ""
    noun = rnd.choice(cat["nouns"])
    attrs = [rnd.choice(slot) for slot in cat["a"]]
    fields = {"b": brand, "m": model, "n": noun, **{f"a{i}": a for i, a in enumerate(attrs)}}
    return " ".join(cat["tpl"].format(**fields).split()), brand, noun, [a for a in attrs if a]


_UNITS = frozenset({"ml", "mL", "ML", "g", "gr", "grs", "kg", "Kg", "L", "l", "cm", "in", "inch", '"', "W"})


def _plain(tok: str) -> bool:
    return tok.isalpha() and tok not in _UNITS and tok.lower() not in {"x", "for", "with", "con", "w/"}


def _variant(title: str, brand: str, rnd: random.Random) -> str:
    """A retailer's rewording of ``title``: abbreviations, case, moved size, extra tokens, missing brand."""
    toks = title.split()
    nb = len(brand.split())
    ops = rnd.sample(["subs", "merge", "move", "drop_brand", "case", "extra", "swap"], rnd.randint(1, 3))
    for op in ops:
        if op == "subs":
            idx = [i for i, t in enumerate(toks) if t in TOKEN_SUBS]
            for i in rnd.sample(idx, min(len(idx), 2)):
                toks[i] = rnd.choice(TOKEN_SUBS[toks[i]])
        elif op == "merge":  # "60 ml" -> "60ml"
            for i in range(len(toks) - 1, 0, -1):
                if re.fullmatch(r"[\d.,]+", toks[i - 1]) and toks[i] in _UNITS:
                    toks[i - 1 : i + 1] = [toks[i - 1] + toks[i]]
        elif op == "move" and len(toks) > nb + 2 and re.match(r"[\d.,]+$", toks[-2]):
            size = toks[-2:]
            toks = toks[:nb] + size + toks[nb:-2] if rnd.random() < 0.5 else size + toks[:-2]
        elif op == "drop_brand" and toks[:nb] == brand.split() and len(toks) > nb + 1:
            toks = toks[nb:]
        elif op == "case":
            toks = (" ".join(toks).upper() if rnd.random() < 0.3 else " ".join(toks).lower()).split()
        elif op == "extra":
            toks.append(rnd.choice(EXTRAS))
        elif op == "swap":  # swap two adjacent plain words (never sizes or units)
            ok = [i for i in range(nb, len(toks) - 1) if _plain(toks[i]) and _plain(toks[i + 1])]
            if ok:
                i = rnd.choice(ok)
                toks[i], toks[i + 1] = toks[i + 1], toks[i]
    out = " ".join(toks)
    return out if out != title else f"{title} {rnd.choice(EXTRAS)}"


# ---------------------------------------------------------------------------------------------- generation


def _offers(n: int, n_ret: int, rng: np.random.Generator, rnd: random.Random) -> dict[str, Any]:
    """Good offers: canonical clusters, near-duplicate offers, retailers and base prices."""
    cats = list(VOCAB)
    # 35% of clusters are offered by 2-4 retailers; mean offers per cluster = 0.65 + 0.35 * 3.
    mult = np.minimum(np.where(rng.random(n) < 0.35, rng.integers(2, 5, n), 1), n_ret)
    ends = np.cumsum(mult)
    n_clusters = int(np.searchsorted(ends, n)) + 1
    mult = mult[:n_clusters]
    mult[-1] -= int(ends[n_clusters - 1] - n)  # trim the last cluster so that sum(mult) == n
    weights = rng.uniform(0.5, 1.5, len(cats))
    ccat = rng.choice(len(cats), n_clusters, p=weights / weights.sum())
    if n_clusters >= len(cats):
        ccat[: len(cats)] = np.arange(len(cats))  # every category gets products
    medians = np.array([VOCAB[c]["price"] for c in cats])
    base = medians[ccat] * np.exp(rng.normal(0.0, 0.35, n_clusters))

    titles, brands, nouns, attrs, seen = [], [], [], [], set()
    for k in ccat:
        for _ in range(30):
            t, b, nn, a = _make_title(VOCAB[cats[k]], rnd)
            if t not in seen:
                break
        if t in seen:
            t = f"{t} Pack of {rnd.randint(2, 12)}"
        seen.add(t)
        titles.append(t)
        brands.append(b)
        nouns.append(nn)
        attrs.append(a)

    # retailers: weighted sampling without replacement per cluster (Gumbel top-k); one big retailer.
    rw = 0.65 ** np.arange(n_ret)
    rw[0] = rw[1:].sum() * 0.55 if n_ret > 1 else 1.0
    keys = np.log(rw / rw.sum()) + rng.gumbel(size=(n_clusters, n_ret))
    order = np.argsort(-keys, axis=1)
    cl = np.repeat(np.arange(n_clusters), mult)
    rank = np.arange(n) - np.repeat(np.cumsum(mult) - mult, mult)
    retailer = order[cl, rank]
    price = base[cl] * np.where(rank == 0, 1.0, rng.uniform(0.85, 1.15, n))
    offer_titles = [titles[c] if r == 0 else _variant(titles[c], brands[c], rnd) for c, r in zip(cl, rank, strict=True)]
    return dict(cats=cats, cl=cl, ccat=ccat, retailer=retailer, price=price, title=offer_titles,
                brands=brands, nouns=nouns, attrs=attrs)  # fmt: skip


def _mistag(cats: list[str], tax: _Tax, cat: np.ndarray, price: np.ndarray, n_mis: int,
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Assigned category index per offer: ~75% systematic confusions, the rest far-away categories.

    Only offers below 80% of the target category's median price are mis-tagged into it.
    """
    idx = {c: i for i, c in enumerate(cats)}
    medians = 0.8 * np.array([VOCAB[c]["price"] for c in cats])
    assigned = cat.copy()
    perm = rng.permutation(cat.size)
    chosen: list[int] = []
    n_sys = int(round(0.75 * n_mis))
    for i in perm:
        conf = CONFUSIONS.get(cats[cat[i]])
        if len(chosen) >= n_sys:
            break
        if conf:
            t = idx[conf[int(rng.integers(len(conf)))]]
            if price[i] < medians[t]:
                assigned[i] = t
                chosen.append(i)
    root_arr = np.array([tax.root(c) for c in cats])
    for i in rng.permutation(cat.size):
        if len(chosen) >= n_mis:
            break
        if assigned[i] != cat[i]:
            continue
        far = np.flatnonzero((root_arr != root_arr[cat[i]]) & (medians > price[i]))
        if far.size:
            assigned[i] = far[int(rng.integers(far.size))]
            chosen.append(i)
    return assigned


def _iso(ts: np.ndarray) -> list[str]:
    return [datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in ts]


def generate_demo(out_dir: str | Path, *, n_products: int = 20_000, n_retailers: int = 8, seed: int = 0,
                  reference_time: datetime | None = None, images: bool = False) -> DemoPaths:  # fmt: skip
    """Write the demo (taxonomy, pages, catalog, judgments, truth) into ``out_dir``.

    ``n_products`` is the number of good catalog offers; ~0.2% bad rows (at least 2 per kind) come on top.
    Truth rows align one-to-one, in order, with catalog rows. With ``images``, every product (cluster) gets
    a small PNG under ``images/`` drawn for its *true* category (see :func:`draw_product_image`), so a
    mis-tagged offer looks like what it is; ``image_path`` is filled, relative to the catalog file.
    """
    if n_products < 200 or n_retailers < 2:
        raise ValueError("need n_products >= 200 and n_retailers >= 2")
    ref = reference_time or DEFAULT_REFERENCE_TIME
    ref = ref.replace(tzinfo=UTC) if ref.tzinfo is None else ref.astimezone(UTC)
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    tax = _taxonomy()
    n = n_products
    o = _offers(n, n_retailers, rng, rnd)
    cats, cl = o["cats"], o["cl"]
    true_cat = o["ccat"][cl]
    assigned = _mistag(cats, tax, true_cat, o["price"], int(round(0.07 * n)), rng)
    mistagged = assigned != true_cat

    price = o["price"].copy()
    outlier = np.zeros(n, bool)
    outlier[rng.choice(np.flatnonzero(~mistagged), int(round(0.01 * n)), replace=False)] = True
    price[outlier] *= np.where(rng.random(int(outlier.sum())) < 0.5, 0.01, 50.0)
    price = _pretty_price(price, rng)
    stale = np.zeros(n, bool)
    stale[rng.choice(n, int(round(0.10 * n)), replace=False)] = True
    age = np.where(stale, rng.uniform(15 * 86400, 60 * 86400, n), rng.uniform(0, 2 * 86400, n))
    last_seen = _iso((ref.timestamp() - age) // 60 * 60)

    # descriptions and brand column
    rows_brand = [o["brands"][c] for c in cl]
    brand_col = [b if rng.random() < 0.93 else None for b in rows_brand]
    desc: list[str | None] = []
    for c in cl:
        if rnd.random() < 0.5:
            a = ", ".join(o["attrs"][c]) or "top quality"
            desc.append(rnd.choice(DESCRIPTIONS).format(b=o["brands"][c], n=o["nouns"][c].lower(), a=a))
        else:
            desc.append(None)

    cat_ids = np.array([tax.ids[c] for c in cats])
    good = pl.DataFrame({
        "retailer_idx": o["retailer"].astype(np.int64), "title": o["title"],
        "price": [f"{p:.2f}" for p in price], "category_id": cat_ids[assigned], "last_seen": last_seen,
        "description": desc, "brand": brand_col,
        "true_category_id": cat_ids[true_cat], "is_mistagged": mistagged,
        "cluster_id": [f"C{c:06d}" for c in cl], "is_price_outlier": outlier, "is_stale": stale,
    })  # fmt: skip
    good = good.with_columns(pl.lit(None, pl.Utf8).alias("bad_row_kind"))

    # bad rows: corrupted copies of random good offers (duplicates are exact copies placed after the original)
    per_kind = max(2, int(round(0.002 * n / len(BAD_ROW_KINDS))))
    bad_parts = []
    for kind in BAD_ROW_KINDS[:5] + BAD_ROW_KINDS[6:]:  # duplicates are made after ids are assigned
        src = good[rng.choice(n, per_kind, replace=False).tolist()].with_columns(
            pl.lit(kind).alias("bad_row_kind"), pl.lit(False).alias("is_mistagged"),
            pl.lit(False).alias("is_price_outlier"))  # fmt: skip
        if kind == "missing_title":
            src = src.with_columns(pl.lit(None, pl.Utf8).alias("title"))
        elif kind == "bad_price":
            src = src.with_columns(pl.lit("abc").alias("price"))
        elif kind == "nonpositive_price":
            src = src.with_columns(pl.Series("price", ["0", "-4.99"] * per_kind)[:per_kind])
        elif kind == "unknown_category":
            src = src.with_columns(pl.lit(UNKNOWN_CATEGORY_ID, pl.Int64).alias("category_id"))
        elif kind == "absurd_title":
            src = src.with_columns((pl.col("title") + " ").repeat_by(60).list.join("").str.strip_chars()
                                   .str.slice(0, 640).alias("title"))  # fmt: skip
        elif kind == "bad_last_seen":
            src = src.with_columns(pl.lit("yesterday").alias("last_seen"))
        bad_parts.append(src)
    bad = pl.concat(bad_parts)

    # product ids: unique random sequence numbers per retailer
    rows = pl.concat([good, bad])
    pid = np.empty(rows.height, dtype=object)
    ridx = rows["retailer_idx"].to_numpy()
    for r in range(n_retailers):
        where = np.flatnonzero(ridx == r)
        seq = rng.choice(9_000_000, where.size, replace=False) + 1
        pid[where] = [f"R{r + 1:02d}-{s:07d}" for s in seq]
    rows = rows.with_columns(pl.Series("product_id", pid.tolist(), pl.Utf8))
    rows = rows.with_columns(
        pl.when(pl.col("bad_row_kind") == "missing_product_id").then(None).otherwise(pl.col("product_id"))
        .alias("product_id"))  # fmt: skip
    rows = rows.sort("retailer_idx", "product_id", nulls_last=True)
    # shuffle bad rows into the good ones; duplicates copy a random earlier good row
    key = np.arange(rows.height, dtype=float)
    is_bad = rows["bad_row_kind"].is_not_null().to_numpy()
    key[is_bad] = rng.uniform(0, rows.height, int(is_bad.sum()))
    good_pos = np.flatnonzero(~is_bad)
    orig = rng.choice(good_pos, per_kind, replace=False)
    dups = rows[orig.tolist()].with_columns(pl.lit("duplicate").alias("bad_row_kind"))
    dup_key = orig + rng.uniform(0.5, 30.0, per_kind)
    allrows = pl.concat([rows, dups]).with_columns(pl.Series("_key", np.concatenate([key, dup_key])))
    allrows = allrows.sort("_key").drop("_key")

    retailers = _retailers(n_retailers)
    allrows = allrows.with_columns(pl.col("retailer_idx").replace_strict(
        dict(enumerate(retailers)), return_dtype=pl.Utf8).alias("retailer"))  # fmt: skip
    image_col = ("images/" + pl.col("cluster_id") + ".png") if images else pl.lit(None, pl.Utf8)
    catalog = allrows.select(
        "product_id", "title", "retailer", "price", pl.lit("EUR").alias("currency"), "category_id",
        image_col.alias("image_path"), "last_seen", "description", "brand")  # fmt: skip
    truth = allrows.select(
        "product_id", "retailer", "true_category_id", pl.col("category_id").alias("assigned_category_id"),
        "is_mistagged", "cluster_id", "is_price_outlier", "is_stale", "bad_row_kind")  # fmt: skip

    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = DemoPaths(root, root / "taxonomy.txt", root / "catalog.csv", root / "category_pages.csv",
                      root / "judgments.csv", root / "truth.parquet")  # fmt: skip
    lines = ["# Google_Product_Taxonomy_Version: seestocks-demo", *(f"{i} - {p}" for i, p in TAXONOMY)]
    paths.taxonomy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    page_names = [c for c in cats if c not in MID_PAGES] + list(MID_PAGES)
    pages = pl.DataFrame({"category_id": [tax.ids[p] for p in page_names], "page_name": page_names})
    pages.write_csv(paths.category_pages)
    if images:
        _write_images(root / "images", o["ccat"], len(cats), seed)
    catalog.write_csv(paths.catalog)
    truth.write_parquet(paths.truth)
    _judgments(tax, page_names, truth, rng).write_csv(paths.judgments)
    return paths


def _grade(tax: _Tax, page: str, true_name: str) -> int:
    """Relevance of a product of category ``true_name`` on ``page`` (0-3)."""
    sub = tax.subtree(page)
    if true_name in sub:
        return 3
    if (page, true_name) in NEAR_TYPES:
        return 2
    return 1 if true_name in _confusable(tax, page) else 0


def _confusable(tax: _Tax, page: str) -> set[str]:
    sub = tax.subtree(page)
    out: set[str] = set()
    for c in sub:
        out.update(CONFUSIONS.get(c, ()))
        out.update(s for s, targets in CONFUSIONS.items() if c in targets)
        out.update(s for s, p in tax.parent.items() if p is not None and p == tax.parent[c])
    return out - sub


def _judgments(tax: _Tax, pages: list[str], truth: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Graded judgments for ~65% of pages: genuine, mis-tagged, confusable and random offers."""
    name = {v: k for k, v in tax.ids.items()}
    ok = truth.filter(pl.col("bad_row_kind").is_null() & pl.col("product_id").is_not_null())
    pid = ok["product_id"].to_numpy()
    tcat = np.array([name[c] for c in ok["true_category_id"]])
    acat = np.array([name[c] for c in ok["assigned_category_id"]])
    judged = sorted(rng.choice(len(pages), int(round(0.65 * len(pages))), replace=False).tolist())
    out: dict[str, list[Any]] = {"category_id": [], "product_id": [], "grade": []}
    for j in judged:
        page = pages[j]
        sub = np.array(sorted(tax.subtree(page)))
        tagged, gen = np.isin(acat, sub), np.isin(tcat, sub)
        conf = np.isin(tcat, np.array(sorted(_confusable(tax, page)))) & ~tagged
        size = int(rng.integers(40, 61))
        pools = [(tagged & ~gen, 0.25), (tagged & gen, 0.45), (conf, 0.2), (np.ones(pid.size, bool), 1.0)]
        picked: list[int] = []
        for mask, share in pools:
            cand = np.setdiff1d(np.flatnonzero(mask), picked)
            k = min(cand.size, int(round(share * size)), size - len(picked))
            picked.extend(rng.choice(cand, k, replace=False).tolist())
        for i in sorted(picked, key=lambda i: pid[i]):
            g = _grade(tax, page, tcat[i])
            if rng.random() < 0.05:
                g = int(np.clip(g + rng.choice([-1, 1]), 0, 3))
            out["category_id"].append(tax.ids[page])
            out["product_id"].append(pid[i])
            out["grade"].append(g)
    return pl.DataFrame(out, schema={"category_id": pl.Int64, "product_id": pl.Utf8, "grade": pl.Int64})


# ---------------------------------------------------------------------------------------------- product images

IMAGE_SIZE = 48
_SHAPES = ("disc", "square", "triangle", "diamond", "ring", "cross")
_PATTERNS = ("plain", "hstripes", "vstripes", "dots", "checker")


def category_style(k: int) -> dict[str, Any]:
    """The look of category ``k``: a shape, a fill pattern and a hue, distinct for every demo category."""
    import colorsys

    hue = (k * 0.618033988749895) % 1.0
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.75, 0.85))
    return {"shape": _SHAPES[k % len(_SHAPES)], "pattern": _PATTERNS[(k // len(_SHAPES)) % len(_PATTERNS)],
            "colour": colour}  # fmt: skip


def draw_product_image(k: int, rng: np.random.Generator, size: int = IMAGE_SIZE):  # noqa: ANN201 - PIL image
    """A product photo stand-in for category ``k``: its shape, pattern and colour on a light background,
    with jittered position, size and colour, and pixel noise."""
    from PIL import Image, ImageDraw

    style = category_style(k)
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(225, 256, 3)))
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    r = size * rng.uniform(0.28, 0.4)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    box = (cx - r, cy - r, cx + r, cy + r)
    shape = style["shape"]
    if shape == "disc":
        d.ellipse(box, fill=255)
    elif shape == "square":
        d.rectangle(box, fill=255)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=255)
    elif shape == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=255)
    elif shape == "ring":
        d.ellipse(box, fill=255)
        d.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=0)
    else:  # cross
        w = r / 2.5
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=255)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=255)
    yy, xx = np.mgrid[0:size, 0:size]
    pattern = style["pattern"]
    period = int(rng.integers(5, 8))
    if pattern == "hstripes":
        light = (yy // period) % 2 == 0
    elif pattern == "vstripes":
        light = (xx // period) % 2 == 0
    elif pattern == "dots":
        light = ((yy % period) < 2) & ((xx % period) < 2)
    elif pattern == "checker":
        light = ((yy // period) + (xx // period)) % 2 == 0
    else:
        light = np.zeros((size, size), dtype=bool)
    colour = np.clip(np.array(style["colour"]) + rng.normal(0, 12, 3), 0, 255)
    fg = np.where(light[..., None], 0.55 * colour + 0.45 * 255, colour)
    base = np.asarray(img, dtype=np.float64)
    m = (np.asarray(mask) > 0)[..., None]
    out = np.where(m, fg, base) + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _write_images(folder: Path, cluster_category: np.ndarray, n_categories: int, seed: int) -> None:
    """One PNG per cluster (``C000123.png``), drawn for the cluster's true category."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 4242])
    for c, k in enumerate(cluster_category.tolist()):
        draw_product_image(int(k), rng).save(folder / f"C{c:06d}.png", optimize=False)
