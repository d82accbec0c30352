"""Hostile submission infinite_loop: expected TIMEOUT."""



from hostile import hostile_model


def attack(x=None):
    while True:
        pass


Model, fit = hostile_model(attack, 'forward')
