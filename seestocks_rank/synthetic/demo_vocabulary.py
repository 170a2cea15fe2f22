"""The demo catalog's vocabulary: taxonomy slice, brands, product types, confusions."""

from __future__ import annotations

from typing import Any

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
